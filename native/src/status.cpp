#include "attune/status.h"

namespace attune {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kOutOfMemory: return "OUT_OF_MEMORY";
  }
  return "INTERNAL";
}

}  // namespace attune
