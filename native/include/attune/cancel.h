// Cooperative cancellation: whoever started an operation may set the token from any thread; the
// operation checks it between steps and returns Status::cancelled(). One token per operation, so
// cancelling one call never touches another.
#pragma once

#include <atomic>

namespace attune {

class CancelToken {
 public:
  void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace attune
