#include <string>

#include "attune/status.h"
#include "check.h"

using attune::Status;
using attune::StatusCode;

TEST(default_status_is_ok) {
  const Status status;
  CHECK(status.ok());
  CHECK(std::string(attune::status_code_name(status.code())) == "OK");
}

TEST(errors_carry_code_name_and_message) {
  const Status status = Status::invalid_argument("seconds must be positive");
  CHECK(!status.ok());
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK(std::string(attune::status_code_name(status.code())) == "INVALID_ARGUMENT");
  CHECK(status.message() == "seconds must be positive");
  CHECK(std::string(attune::status_code_name(Status::cancelled().code())) == "CANCELLED");
  CHECK(std::string(attune::status_code_name(Status::internal("x").code())) == "INTERNAL");
  CHECK(std::string(attune::status_code_name(Status::out_of_memory("x").code())) == "OUT_OF_MEMORY");
}
