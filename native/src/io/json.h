// A strict JSON (RFC 8259) parser into a small DOM, for the files a model ships with (config.json,
// safetensors headers, shard indexes). Strict because these files come from anywhere: invalid
// UTF-8, lone surrogates, duplicate keys, trailing commas, NaN and comments are errors, not guesses.
// Errors say what is wrong and at which byte; callers prefix the file name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "attune/status.h"

namespace attune::json {

enum class Type : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

// "null", "a boolean", "a number", ...: for messages like "must be an object, not a string".
const char* type_name(Type type);

class Value {
 public:
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;  // document order; keys are unique

  struct Number {
    double value = 0;
    // Set when the literal had no fraction and no exponent and fits int64; then `integer` is exact
    // (a double is not above 2^53, and token ids or byte offsets must not be rounded).
    bool is_integer = false;
    int64_t integer = 0;
  };

  Value() = default;  // null; every other value comes from parse()

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_number() const { return type() == Type::kNumber; }
  bool is_integer() const { return is_number() && std::get<Number>(data_).is_integer; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Each accessor returns a neutral value (false, 0, empty) when the type differs; check first.
  bool as_bool() const;
  double as_number() const;
  int64_t as_integer() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;

  // The member called `key` of an object, or nullptr (absent, or this is not an object).
  const Value* find(std::string_view key) const;

 private:
  friend class Parser;
  template <typename T>
  explicit Value(T data) : data_(std::in_place_type<T>, std::move(data)) {}

  // The alternatives' order matches Type.
  std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;
};

struct Limits {
  size_t max_bytes = 64u << 20;
  int max_depth = 128;  // nesting of arrays and objects; bounds the parser's recursion
  // Bounds memory: a value costs about 40 bytes plus its contents, whatever the text's size.
  size_t max_values = size_t{1} << 22;
};

// Parses all of `text` (one value, optional whitespace around it). On failure `out` is untouched and
// the message reads "invalid JSON at byte N: <what>".
Status parse(std::string_view text, Value* out, const Limits& limits = Limits());

}  // namespace attune::json
