#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <system_error>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#endif

namespace attune::cpu {

namespace {

// How long a thread spins before parking. Decode issues the next op within microseconds, and a
// futex wake-up costs 5-50 µs of latency, so a short spin pays; a longer one would only burn a
// core that the app's other threads might want.
constexpr std::chrono::microseconds kSpinBudget{200};

void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#else
  std::this_thread::yield();
#endif
}

// Spins until done() or the budget runs out. After the first few hundred pauses it yields on each
// round: when there are more threads than free cores (a bigger pool than the machine, or other
// busy programs) the thread it is waiting for may need this core to finish.
template <typename Done>
bool spin_until(const Done& done) {
  constexpr unsigned kPauses = 256;
  const auto deadline = std::chrono::steady_clock::now() + kSpinBudget;
  for (unsigned i = 0;; ++i) {
    if (done()) return true;
    if (i < kPauses) {
      cpu_relax();
    } else {
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(unsigned threads) {
  const unsigned wanted = std::max(1u, threads);
  workers_.reserve(wanted - 1);
  for (unsigned i = 1; i < wanted; ++i) {
    try {
      workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (const std::system_error&) {
      break;  // the OS has no thread to spare: a smaller pool is slower, but never an abort
    }
  }
  size_ = static_cast<unsigned>(workers_.size()) + 1;
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mutex_);  // so a worker cannot check and then park past this
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_chunk(unsigned index) const {
  if (index >= chunks_) return;
  const int64_t begin = count_ * index / chunks_;
  const int64_t end = count_ * (index + 1) / chunks_;
  (*fn_)(begin, end);
}

void ThreadPool::run(int64_t count, const std::function<void(int64_t, int64_t)>& fn) {
  // count: items; chunk i is [count·i/chunks, count·(i+1)/chunks).
  if (count <= 0) return;
  const unsigned chunks = static_cast<unsigned>(std::min<int64_t>(size_, count));
  if (chunks == 1) {
    fn(0, count);
    return;
  }
  fn_ = &fn;
  count_ = count;
  chunks_ = chunks;
  // Every worker acknowledges every generation, even one with no chunk for it: then no worker can
  // still be reading the job fields when the next run() rewrites them.
  pending_.store(static_cast<unsigned>(workers_.size()));
  // seq_cst pairs with the worker's sleepers_ increment: either it sees the new generation before
  // parking, or this sees it parked and wakes it.
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    wake_.notify_all();
  }
  run_chunk(0);
  if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }
}

void ThreadPool::worker_loop(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    run_chunk(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the mutex, so run() cannot check pending_ and then park after this notify.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

}  // namespace attune::cpu
