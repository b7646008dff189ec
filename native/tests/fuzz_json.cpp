// Fuzz target: arbitrary bytes as JSON. The parser must never crash or read outside the bytes (the
// sanitizers watch); a refusal must give the byte offset; an accepted document must hold only valid
// UTF-8 and exact integers, and must survive writing it back out and parsing it again unchanged.
//
// ctest runs it through fuzz_driver.cpp. With clang, the same file is a libFuzzer target:
//   clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -Inative/include -Inative/src
//     native/tests/fuzz_json.cpp native/src/status.cpp native/src/io/json.cpp -o fuzz_json      (one command)
//   ./fuzz_json corpus/
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_driver.h"
#include "io/json.h"

using attune::json::Type;
using attune::json::Value;

namespace {

size_t accepted = 0;

void require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "fuzz_json: broken invariant: %s\n", invariant);
  std::abort();
}

// Decodes UTF-8 independently of the parser's validator: every sequence must be the shortest
// form of a scalar value (no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    uint32_t code_point = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = code_point << 6 | (next & 0x3F);
    }
    const uint32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < shortest[length] || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

void write_string(const std::string& text, std::string* out) {
  *out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
      *out += escape;
    } else {
      *out += c;
    }
  }
  *out += '"';
}

// Checks a parsed value's invariants and writes it back as JSON.
void check_and_write(const Value& value, int depth, std::string* out) {
  require(depth <= 128, "nesting stays within the limit");
  switch (value.type()) {
    case Type::kNull: *out += "null"; break;
    case Type::kBool: *out += value.as_bool() ? "true" : "false"; break;
    case Type::kNumber: {
      char number[40];
      if (value.is_integer()) {
        require(static_cast<double>(value.as_integer()) == value.as_number(), "an integer's double is its value");
        std::snprintf(number, sizeof number, "%" PRId64, value.as_integer());
      } else {
        std::snprintf(number, sizeof number, "%.17g", value.as_number());  // 17 digits: round-trips exactly
      }
      *out += number;
      break;
    }
    case Type::kString:
      require(valid_utf8(value.as_string()), "strings are valid UTF-8");
      write_string(value.as_string(), out);
      break;
    case Type::kArray:
      *out += '[';
      for (size_t i = 0; i < value.as_array().size(); ++i) {
        if (i > 0) *out += ',';
        check_and_write(value.as_array()[i], depth + 1, out);
      }
      *out += ']';
      break;
    case Type::kObject:
      *out += '{';
      for (size_t i = 0; i < value.as_object().size(); ++i) {
        const Value::Member& member = value.as_object()[i];
        require(valid_utf8(member.first), "keys are valid UTF-8");
        require(value.find(member.first) == &member.second, "keys are unique");
        if (i > 0) *out += ',';
        write_string(member.first, out);
        *out += ':';
        check_and_write(member.second, depth + 1, out);
      }
      *out += '}';
      break;
  }
}

bool same(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::kNull: return true;
    case Type::kBool: return a.as_bool() == b.as_bool();
    case Type::kNumber: return a.as_number() == b.as_number() && (!a.is_integer() || a.as_integer() == b.as_integer());
    case Type::kString: return a.as_string() == b.as_string();
    case Type::kArray:
      if (a.as_array().size() != b.as_array().size()) return false;
      for (size_t i = 0; i < a.as_array().size(); ++i) {
        if (!same(a.as_array()[i], b.as_array()[i])) return false;
      }
      return true;
    case Type::kObject:
      if (a.as_object().size() != b.as_object().size()) return false;
      for (size_t i = 0; i < a.as_object().size(); ++i) {
        const Value::Member &x = a.as_object()[i], &y = b.as_object()[i];
        if (x.first != y.first || !same(x.second, y.second)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Value value;
  const attune::Status status = attune::json::parse(text, &value);
  if (!status.ok()) {
    const char* prefix = "invalid JSON at byte ";
    require(status.message().rfind(prefix, 0) == 0, "a refusal gives the byte offset");
    const unsigned long long offset = std::strtoull(status.message().c_str() + std::strlen(prefix), nullptr, 10);
    require(offset <= size, "the offset is inside the text");
    return 0;
  }
  ++accepted;
  std::string written;
  check_and_write(value, 0, &written);
  Value reread;
  require(attune::json::parse(written, &reread).ok(), "the written-back document parses");
  require(same(value, reread), "the written-back document is the same");
  return 0;
}

attune_test::FuzzSetup attune_test::fuzz_setup() {
  FuzzSetup setup;
  setup.seeds = {
      R"({"architectures": ["LlamaForCausalLM"], "bos_token_id": 128000, "eos_token_id": [128001, 128009],
          "hidden_size": 4096, "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "rope_type": "llama3"},
          "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "sliding_window": null})",
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[4,3],"data_offsets":[0,24]}})",
      R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u20AC\ud83d\ude00", "caf)" "\xC3\xA9" R"(", "\u0000", ""])",
      R"([0, -0, 1.5, -1.5e-3, 1E+2, 9223372036854775807, -9223372036854775808, 9223372036854775808, 0.1])",
      R"({"a": {"b": {"c": [[[[[]]]], {}]}}, "d": [true, false, null]})",
      std::string(100, '[') + std::string(100, ']'),
  };
  setup.tokens = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00",
                  "\\x", "null", "true", "false", "-", "0", "-0", "1e999", "1e-999", "1.", ".5", "01", "NaN",
                  "18446744073709551615", "9223372036854775808", "\"\xFF\"", "\xC0\xAF", "\xED\xA0\x80",
                  "\xF4\x90\x80\x80", "\xEF\xBB\xBF", "\"k\":", "\"k\":1,\"k\":2", std::string(130, '['), "\t\r\n "};
  setup.accepted = &accepted;
  return setup;
}
