// Errors are values: the engine runs inside the app's worker process, so it must never exit() or
// abort(); every failure comes back to the caller as a Status with a stable code and a message a
// person can read.
#pragma once

#include <string>
#include <utility>

namespace attune {

enum class StatusCode {
  kOk,
  kInvalidArgument,  // the caller passed something the engine cannot work with
  kCancelled,        // the caller's CancelToken was set; the operation stopped between steps
  kInternal,         // a bug or an unexpected failure inside the engine
  kOutOfMemory,      // a device (GPU) allocation did not fit; the message gives needed and free bytes
};

// Stable upper-case names ("CANCELLED", ...); the addon puts them on JS errors as `code`.
const char* status_code_name(StatusCode code);

class Status {
 public:
  Status() = default;  // ok
  static Status invalid_argument(std::string message) { return {StatusCode::kInvalidArgument, std::move(message)}; }
  static Status cancelled() { return {StatusCode::kCancelled, "The operation was cancelled"}; }
  static Status internal(std::string message) { return {StatusCode::kInternal, std::move(message)}; }
  static Status out_of_memory(std::string message) { return {StatusCode::kOutOfMemory, std::move(message)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace attune
