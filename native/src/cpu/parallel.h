// Splits [0, count) into one contiguous range per thread and runs them concurrently; the calling
// thread takes the first range. Threads are started per call: the ops that use this run for
// milliseconds, against tens of microseconds to start a thread.
#pragma once

#include <algorithm>
#include <system_error>
#include <thread>
#include <vector>

namespace attune {

template <typename Fn>  // Fn: void(int begin, int end)
void parallel_for(int count, unsigned threads, const Fn& fn) {
  const int workers = std::max(1, std::min<int>(static_cast<int>(threads), count));
  const int chunk = (count + workers - 1) / workers;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers) - 1);
  for (int w = 1; w < workers; ++w) {
    const int begin = w * chunk;
    const int end = std::min(count, begin + chunk);
    if (begin >= end) continue;
    try {
      pool.emplace_back([&fn, begin, end] { fn(begin, end); });
    } catch (const std::system_error&) {
      fn(begin, end);  // the OS has no thread to spare: slower, but never an abort
    }
  }
  fn(0, std::min(count, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace attune
