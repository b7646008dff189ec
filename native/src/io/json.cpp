#include "io/json.h"

#include <algorithm>
#include <cmath>
#include <locale>
#include <numeric>
#include <sstream>

namespace attune::json {

const char* type_name(Type type) {
  switch (type) {
    case Type::kNull: return "null";
    case Type::kBool: return "a boolean";
    case Type::kNumber: return "a number";
    case Type::kString: return "a string";
    case Type::kArray: return "an array";
    case Type::kObject: return "an object";
  }
  return "a value";
}

bool Value::as_bool() const { return is_bool() && std::get<bool>(data_); }

double Value::as_number() const { return is_number() ? std::get<Number>(data_).value : 0; }

int64_t Value::as_integer() const { return is_integer() ? std::get<Number>(data_).integer : 0; }

const std::string& Value::as_string() const {
  static const std::string empty;
  return is_string() ? std::get<std::string>(data_) : empty;
}

const Value::Array& Value::as_array() const {
  static const Array empty;
  return is_array() ? std::get<Array>(data_) : empty;
}

const Value::Object& Value::as_object() const {
  static const Object empty;
  return is_object() ? std::get<Object>(data_) : empty;
}

const Value* Value::find(std::string_view key) const {
  for (const Member& member : as_object()) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// How a byte reads in an error message: 'x' when printable ASCII, else its hex value.
std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static const char kHex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

// Length of the well-formed UTF-8 sequence at p (Unicode Table 3-7: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it is not one.
size_t utf8_sequence_length(const unsigned char* p, size_t available) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c == 0xE0) {
    length = 3, low = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    length = 3;
  } else if (c == 0xED) {
    length = 3, high = 0x9F;
  } else if (c == 0xF0) {
    length = 4, low = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    length = 4;
  } else if (c == 0xF4) {
    length = 4, high = 0x8F;
  } else {
    return 0;
  }
  if (available < length || p[1] < low || p[1] > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  }
  return length;
}

void append_utf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// The exact value of a literal of decimal digits with optional '-', or false when it overflows.
bool parse_int64(std::string_view literal, int64_t* out) {
  const bool negative = !literal.empty() && literal[0] == '-';
  // Accumulate negatively: INT64_MIN has no positive counterpart.
  int64_t value = 0;
  for (size_t i = negative ? 1 : 0; i < literal.size(); ++i) {
    const int digit = literal[i] - '0';
    if (value < (INT64_MIN + digit) / 10) return false;
    value = value * 10 - digit;
  }
  if (!negative && value == INT64_MIN) return false;
  *out = negative ? value : -value;
  return true;
}

}  // namespace

// Recursive descent over the text; the first error stops everything and is kept with its offset.
class Parser {
 public:
  Parser(std::string_view text, const Limits& limits) : text_(text), limits_(limits) {}

  Status run(Value* out) {
    if (text_.size() > limits_.max_bytes) {
      return Status::invalid_argument("JSON text of " + std::to_string(text_.size()) + " bytes is over the " +
                                      std::to_string(limits_.max_bytes) + "-byte limit");
    }
    if (text_.size() >= 3 && text_.compare(0, 3, "\xEF\xBB\xBF") == 0) {
      return error_at(0, "the text starts with a UTF-8 byte order mark, which JSON does not allow");
    }
    Value value;
    if (!parse_value(&value, 0)) return error();
    skip_whitespace();
    if (pos_ < text_.size()) return error_at(pos_, "unexpected " + describe_byte(byte()) + " after the JSON value");
    *out = std::move(value);
    return {};
  }

 private:
  unsigned char byte() const { return static_cast<unsigned char>(text_[pos_]); }
  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  bool fail(size_t offset, std::string message) {
    error_offset_ = offset;
    error_message_ = std::move(message);
    return false;
  }
  Status error_at(size_t offset, std::string message) {
    fail(offset, std::move(message));
    return error();
  }
  Status error() const {
    return Status::invalid_argument("invalid JSON at byte " + std::to_string(error_offset_) + ": " + error_message_);
  }

  void skip_whitespace() {
    while (pos_ < text_.size() && (at(' ') || at('\t') || at('\n') || at('\r'))) ++pos_;
  }

  bool parse_value(Value* out, int depth) {
    skip_whitespace();
    if (pos_ >= text_.size()) return fail(pos_, "unexpected end of input where a value was expected");
    if (++values_ > limits_.max_values) {
      return fail(pos_, "more than " + std::to_string(limits_.max_values) + " values");
    }
    switch (text_[pos_]) {
      case '{': return parse_object(out, depth + 1);
      case '[': return parse_array(out, depth + 1);
      case '"': {
        std::string string;
        if (!parse_string(&string)) return false;
        *out = Value(std::move(string));
        return true;
      }
      case 't': return parse_literal("true", Value(true), out);
      case 'f': return parse_literal("false", Value(false), out);
      case 'n': return parse_literal("null", Value(), out);
      default:
        if (at('-') || is_digit(text_[pos_])) return parse_number(out);
        return fail(pos_, "unexpected " + describe_byte(byte()) + " where a value was expected");
    }
  }

  bool parse_literal(std::string_view word, Value value, Value* out) {
    if (text_.compare(pos_, word.size(), word) != 0) {
      return fail(pos_, "unexpected " + describe_byte(byte()) + " where a value was expected");
    }
    pos_ += word.size();
    *out = std::move(value);
    return true;
  }

  bool check_depth(int depth) {
    if (depth <= limits_.max_depth) return true;
    return fail(pos_, "arrays and objects nested more than " + std::to_string(limits_.max_depth) + " deep");
  }

  bool parse_array(Value* out, int depth) {
    if (!check_depth(depth)) return false;
    ++pos_;  // '['
    Value::Array items;
    skip_whitespace();
    if (at(']')) {
      ++pos_;
      *out = Value(std::move(items));
      return true;
    }
    while (true) {
      Value item;
      if (!parse_value(&item, depth)) return false;
      items.push_back(std::move(item));
      skip_whitespace();
      if (at(',')) {
        ++pos_;
        skip_whitespace();
        // Named separately: "[1,]" is the most common hand-edited mistake.
        if (at(']')) return fail(pos_, "trailing ',' before ']'");
        continue;
      }
      if (at(']')) break;
      return fail(pos_, pos_ < text_.size() ? "expected ',' or ']' after an array element, found " + describe_byte(byte())
                                            : "unexpected end of input inside an array");
    }
    ++pos_;
    *out = Value(std::move(items));
    return true;
  }

  bool parse_object(Value* out, int depth) {
    if (!check_depth(depth)) return false;
    ++pos_;  // '{'
    Value::Object members;
    std::vector<size_t> key_offsets;
    skip_whitespace();
    if (at('}')) {
      ++pos_;
      *out = Value(std::move(members));
      return true;
    }
    while (true) {
      skip_whitespace();
      if (!at('"')) {
        if (at('}')) return fail(pos_, "trailing ',' before '}'");
        return fail(pos_, pos_ < text_.size() ? "expected a string key, found " + describe_byte(byte())
                                              : "unexpected end of input inside an object");
      }
      key_offsets.push_back(pos_);
      std::string key;
      if (!parse_string(&key)) return false;
      skip_whitespace();
      if (!at(':')) return fail(pos_, "expected ':' after the key \"" + key + "\"");
      ++pos_;
      Value value;
      if (!parse_value(&value, depth)) return false;
      members.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (at(',')) {
        ++pos_;
        continue;
      }
      if (at('}')) break;
      return fail(pos_, pos_ < text_.size() ? "expected ',' or '}' after an object member, found " + describe_byte(byte())
                                            : "unexpected end of input inside an object");
    }
    ++pos_;
    if (!check_unique_keys(members, key_offsets)) return false;
    *out = Value(std::move(members));
    return true;
  }

  // Duplicate keys are an error: parsers disagree on which one wins, so the file is ambiguous.
  bool check_unique_keys(const Value::Object& members, const std::vector<size_t>& key_offsets) {
    std::vector<size_t> order(members.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return members[a].first < members[b].first; });
    size_t first_duplicate = members.size();
    for (size_t i = 1; i < order.size(); ++i) {
      if (members[order[i]].first == members[order[i - 1]].first) first_duplicate = std::min(first_duplicate, order[i]);
    }
    if (first_duplicate == members.size()) return true;
    return fail(key_offsets[first_duplicate], "duplicate key \"" + members[first_duplicate].first + "\"");
  }

  bool parse_string(std::string* out) {
    const size_t start = pos_;
    ++pos_;  // '"'
    while (true) {
      if (pos_ >= text_.size()) return fail(start, "unterminated string");
      const unsigned char c = byte();
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!parse_escape(out)) return false;
      } else if (c < 0x20) {
        return fail(pos_, "control character " + describe_byte(c) + " in a string must be escaped");
      } else {
        const auto* bytes = reinterpret_cast<const unsigned char*>(text_.data()) + pos_;
        const size_t length = utf8_sequence_length(bytes, text_.size() - pos_);
        if (length == 0) return fail(pos_, "invalid UTF-8 in a string");
        out->append(text_.data() + pos_, length);
        pos_ += length;
      }
    }
  }

  // Four hex digits at `offset` as a UTF-16 code unit, or -1.
  int32_t hex4(size_t offset) const {
    if (offset > text_.size() || text_.size() - offset < 4) return -1;
    int32_t unit = 0;
    for (size_t i = 0; i < 4; ++i) {
      const int digit = hex_value(text_[offset + i]);
      if (digit < 0) return -1;
      unit = unit * 16 + digit;
    }
    return unit;
  }

  bool parse_escape(std::string* out) {
    const size_t start = pos_;  // the backslash
    if (++pos_ >= text_.size()) return fail(start, "unterminated escape sequence");
    const char c = text_[pos_++];
    switch (c) {
      case '"': out->push_back('"'); return true;
      case '\\': out->push_back('\\'); return true;
      case '/': out->push_back('/'); return true;
      case 'b': out->push_back('\b'); return true;
      case 'f': out->push_back('\f'); return true;
      case 'n': out->push_back('\n'); return true;
      case 'r': out->push_back('\r'); return true;
      case 't': out->push_back('\t'); return true;
      case 'u': break;
      default: return fail(start, "invalid escape \\" + describe_byte(static_cast<unsigned char>(c)));
    }
    const int32_t unit = hex4(pos_);
    if (unit < 0) return fail(start, "\\u must be followed by four hex digits");
    pos_ += 4;
    uint32_t code_point = static_cast<uint32_t>(unit);
    if (unit >= 0xDC00 && unit <= 0xDFFF) return fail(start, "unpaired UTF-16 low surrogate");
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      // A high surrogate must be followed at once by an escaped low surrogate.
      const int32_t low = text_.compare(pos_, 2, "\\u") == 0 ? hex4(pos_ + 2) : -1;
      if (low < 0xDC00 || low > 0xDFFF) return fail(start, "unpaired UTF-16 high surrogate");
      pos_ += 6;
      code_point = 0x10000 + ((code_point - 0xD800) << 10) + static_cast<uint32_t>(low - 0xDC00);
    }
    append_utf8(code_point, out);
    return true;
  }

  bool parse_digits() {
    if (pos_ >= text_.size() || !is_digit(text_[pos_])) return false;
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    return true;
  }

  bool parse_number(Value* out) {
    const size_t start = pos_;
    if (at('-')) ++pos_;
    if (at('0')) {
      ++pos_;
      if (pos_ < text_.size() && is_digit(text_[pos_])) return fail(start, "numbers must not have leading zeros");
    } else if (!parse_digits()) {
      return fail(start, "expected a digit after '-'");
    }
    bool integral = true;
    if (at('.')) {
      ++pos_;
      integral = false;
      if (!parse_digits()) return fail(start, "expected a digit after the decimal point");
    }
    if (at('e') || at('E')) {
      ++pos_;
      integral = false;
      if (at('+') || at('-')) ++pos_;
      if (!parse_digits()) return fail(start, "expected a digit in the exponent");
    }
    const std::string_view literal = text_.substr(start, pos_ - start);
    Value::Number number;
    if (integral && parse_int64(literal, &number.integer)) {
      number.is_integer = true;
      number.value = static_cast<double>(number.integer);
    } else {
      // The classic locale: strtod and friends read the process locale's decimal separator.
      std::istringstream stream{std::string(literal)};
      stream.imbue(std::locale::classic());
      stream >> number.value;
      if (stream.fail() || !std::isfinite(number.value)) return fail(start, "number out of the range of a double");
    }
    *out = Value(number);
    return true;
  }

  std::string_view text_;
  Limits limits_;
  size_t pos_ = 0;
  size_t values_ = 0;
  size_t error_offset_ = 0;
  std::string error_message_;
};

Status parse(std::string_view text, Value* out, const Limits& limits) { return Parser(text, limits).run(out); }

}  // namespace attune::json
