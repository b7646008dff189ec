#include "io/json_fields.h"

namespace attune::json {

const Value* Fields::get(std::string_view key) const {
  const Value* value = object_.find(key);
  return value != nullptr && !value->is_null() ? value : nullptr;
}

Status Fields::error(std::string_view key, std::string_view problem) const {
  return Status::invalid_argument(where_ + ": field \"" + std::string(key) + "\" " + std::string(problem));
}

Status Fields::only(std::initializer_list<std::string_view> known) const {
  for (const Value::Member& member : object_.as_object()) {
    bool found = false;
    for (std::string_view key : known) found = found || member.first == key;
    if (!found) return Status::invalid_argument(where_ + ": unexpected field \"" + member.first + "\"");
  }
  return {};
}

Status Fields::read_positive_int(std::string_view key, const Value& value, int64_t* out, int64_t max) const {
  if (!value.is_integer() || value.as_integer() <= 0) return error(key, "must be a positive integer");
  if (value.as_integer() > max) {
    return error(key, "is " + std::to_string(value.as_integer()) + "; at most " + std::to_string(max) + " is supported");
  }
  *out = value.as_integer();
  return {};
}

Status Fields::positive_int(std::string_view key, int64_t* out, int64_t max) const {
  const Value* value = get(key);
  if (value == nullptr) return error(key, "is missing; it must be a positive integer");
  return read_positive_int(key, *value, out, max);
}

Status Fields::optional_positive_int(std::string_view key, int64_t* out, int64_t max) const {
  const Value* value = get(key);
  return value == nullptr ? Status() : read_positive_int(key, *value, out, max);
}

Status Fields::positive_number(std::string_view key, double* out) const {
  const Value* value = get(key);
  if (value == nullptr) return error(key, "is missing; it must be a positive number");
  if (!value->is_number() || !(value->as_number() > 0)) return error(key, "must be a positive number");
  *out = value->as_number();
  return {};
}

Status Fields::optional_positive_number(std::string_view key, double* out) const {
  return get(key) == nullptr ? Status() : positive_number(key, out);
}

Status Fields::optional_bool(std::string_view key, bool* out) const {
  const Value* value = get(key);
  if (value == nullptr) return {};
  if (!value->is_bool()) return error(key, "must be true or false");
  *out = value->as_bool();
  return {};
}

Status Fields::string(std::string_view key, std::string* out) const {
  const Value* value = get(key);
  if (value == nullptr) return error(key, "is missing; it must be a string");
  if (!value->is_string()) return error(key, std::string("must be a string, not ") + type_name(value->type()));
  *out = value->as_string();
  return {};
}

Status Fields::optional_string(std::string_view key, std::string* out) const {
  return get(key) == nullptr ? Status() : string(key, out);
}

}  // namespace attune::json
