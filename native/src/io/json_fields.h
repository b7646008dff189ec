// Typed reads of one JSON object's fields, with errors that name the file and the field:
//   config.json: field "num_attention_heads" must be a positive integer
// Required reads fail on an absent or null field; optional reads leave *out alone then, so callers
// store the default first. null counts as absent because Python writers emit it for "not set".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "attune/status.h"
#include "io/json.h"

namespace attune::json {

class Fields {
 public:
  // `where` names the object in errors: "/models/x/config.json", "config.json: rope_scaling".
  // `object` must outlive this; a non-object reads as one with no fields (check is_object first).
  Fields(const Value& object, std::string where) : object_(object), where_(std::move(where)) {}

  const std::string& where() const { return where_; }
  // The field, or nullptr when it is absent or null.
  const Value* get(std::string_view key) const;
  // "<where>: field \"<key>\" <problem>"
  Status error(std::string_view key, std::string_view problem) const;
  // An error naming the first field that is not in `known`: for formats where an unknown field
  // means the file is not what we think it is.
  Status only(std::initializer_list<std::string_view> known) const;

  Status positive_int(std::string_view key, int64_t* out, int64_t max = INT64_MAX) const;
  Status optional_positive_int(std::string_view key, int64_t* out, int64_t max = INT64_MAX) const;
  Status positive_number(std::string_view key, double* out) const;
  Status optional_positive_number(std::string_view key, double* out) const;
  Status optional_bool(std::string_view key, bool* out) const;
  Status string(std::string_view key, std::string* out) const;
  Status optional_string(std::string_view key, std::string* out) const;

 private:
  Status read_positive_int(std::string_view key, const Value& value, int64_t* out, int64_t max) const;

  const Value& object_;
  std::string where_;
};

}  // namespace attune::json
