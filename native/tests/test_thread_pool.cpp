#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu/thread_pool.h"

namespace {

using attune::cpu::ThreadPool;

// Runs pool.run(count) and checks every index was visited exactly once, in at most size() chunks,
// each a non-empty contiguous range.
void check_coverage(ThreadPool& pool, int64_t count) {
  std::vector<std::atomic<int>> visits(static_cast<size_t>(count));
  std::atomic<int> chunks{0};
  pool.run(count, [&](int64_t begin, int64_t end) {
    CHECK(0 <= begin && begin < end && end <= count);
    ++chunks;
    for (int64_t i = begin; i < end; ++i) ++visits[static_cast<size_t>(i)];
  });
  bool each_once = true;
  for (auto& v : visits) each_once = each_once && v.load() == 1;
  CHECK(each_once);
  CHECK(chunks.load() <= static_cast<int>(pool.size()));
  CHECK(count == 0 || chunks.load() == static_cast<int>(std::min<int64_t>(count, pool.size())));
}

}  // namespace

TEST(size_counts_the_calling_thread) {
  CHECK(ThreadPool(0).size() == 1);
  CHECK(ThreadPool(1).size() == 1);
  CHECK(ThreadPool(3).size() == 3);
}

TEST(every_index_is_visited_exactly_once) {
  for (unsigned threads : {1u, 2u, 3u, 5u}) {
    ThreadPool pool(threads);
    for (int64_t count : {1, 2, 3, 4, 5, 7, 64, 1000, 100003}) check_coverage(pool, count);
  }
}

TEST(count_below_thread_count_gives_one_item_per_chunk) {
  ThreadPool pool(4);
  check_coverage(pool, 2);
  check_coverage(pool, 3);
}

TEST(zero_and_negative_counts_call_nothing) {
  ThreadPool pool(3);
  std::atomic<int> calls{0};
  pool.run(0, [&](int64_t, int64_t) { ++calls; });
  pool.run(-5, [&](int64_t, int64_t) { ++calls; });
  CHECK(calls.load() == 0);
}

TEST(chunks_run_on_distinct_threads_including_the_caller) {
  ThreadPool pool(3);
  std::vector<std::thread::id> ids(3);
  pool.run(3, [&](int64_t begin, int64_t) { ids[static_cast<size_t>(begin)] = std::this_thread::get_id(); });
  CHECK(ids[0] == std::this_thread::get_id());
  CHECK(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
}

TEST(repeated_runs_reuse_the_pool) {
  // Many short jobs back to back (as decode issues them), then jobs after the workers have parked.
  ThreadPool pool(3);
  int64_t total = 0;
  for (int round = 0; round < 20000; ++round) {
    std::atomic<int64_t> sum{0};
    pool.run(10, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) sum += i;
    });
    total += sum.load();
  }
  CHECK(total == int64_t{45} * 20000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the spin budget: workers park
  for (int round = 0; round < 3; ++round) check_coverage(pool, 17);
}

TEST(writes_in_the_job_are_visible_after_run_returns) {
  ThreadPool pool(2);
  std::vector<int64_t> out(1 << 16);
  for (int round = 1; round <= 50; ++round) {
    pool.run(static_cast<int64_t>(out.size()), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[static_cast<size_t>(i)] = i * round;
    });
    bool all = true;
    for (size_t i = 0; i < out.size(); ++i) all = all && out[i] == static_cast<int64_t>(i) * round;
    CHECK(all);
  }
}

TEST(destroying_an_idle_pool_joins_its_threads) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(4);
    if (i % 2 == 0) check_coverage(pool, 9);
  }
}
