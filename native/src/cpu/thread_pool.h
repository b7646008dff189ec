// A persistent pool of worker threads for the CPU ops. Decode runs thousands of small ops a second;
// starting threads per op would cost more than many of the ops, so the threads are started once
// and park between calls (spinning briefly first, since the next op usually follows within µs).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attune::cpu {

class ThreadPool {
 public:
  // threads: how many threads run each op, the caller included (0 is taken as 1); size()-1 workers.
  // size() is smaller when the OS refuses to start that many.
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return size_; }

  // Splits [0, count) into min(size(), count) contiguous, near-equal chunks and calls fn(begin, end)
  // once per chunk, one chunk per thread, the calling thread taking the first; returns when all are
  // done. Static chunks keep each thread on the same rows op after op (warm caches). fn must not
  // throw (a worker has nowhere to send it: the program terminates) nor call run() on this pool.
  // One caller at a time.
  void run(int64_t count, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void worker_loop(unsigned index);
  void run_chunk(unsigned index) const;

  unsigned size_ = 1;
  std::vector<std::thread> workers_;

  // The job of the current generation; written by run() only while every worker is idle.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  unsigned chunks_ = 0;

  std::atomic<uint64_t> generation_{0};  // bumped once per run(): the workers' start signal
  std::atomic<unsigned> pending_{0};     // workers yet to finish this generation
  std::atomic<unsigned> sleepers_{0};    // workers parked on wake_, so run() can skip the syscall
  std::atomic<bool> stop_{false};        // set once, by the destructor
  std::mutex mutex_;
  std::condition_variable wake_;  // workers wait here for a new generation
  std::condition_variable done_;  // run() waits here for pending_ to reach 0
};

}  // namespace attune::cpu
