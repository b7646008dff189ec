#include <cmath>
#include <string>

#include "check.h"
#include "io/json.h"
#include "io/json_fields.h"
#include "status_matchers.h"

using attune::Status;
using attune::json::Fields;
using attune::json::Limits;
using attune::json::Type;
using attune::json::Value;
using attune_test::fails_with;
using attune_test::succeeds;

namespace {

Value parse_ok(const std::string& text) {
  Value value;
  CHECK(succeeds(attune::json::parse(text, &value)));
  return value;
}

Status parse_error(const std::string& text, const Limits& limits = Limits()) {
  Value value;
  return attune::json::parse(text, &value, limits);
}

}  // namespace

TEST(literals_and_whitespace) {
  CHECK(parse_ok("null").is_null());
  CHECK(parse_ok(" \t\r\n true \n").as_bool());
  CHECK(parse_ok("false").is_bool() && !parse_ok("false").as_bool());
}

TEST(integers_are_exact_and_only_when_written_as_integers) {
  CHECK(parse_ok("123").is_integer() && parse_ok("123").as_integer() == 123);
  CHECK(parse_ok("-0").is_integer() && parse_ok("-0").as_integer() == 0);
  CHECK(parse_ok("9223372036854775807").as_integer() == INT64_MAX);
  CHECK(parse_ok("-9223372036854775808").as_integer() == INT64_MIN);
  // 2^53 + 1 has no double; the integer keeps it.
  CHECK(parse_ok("9007199254740993").as_integer() == 9007199254740993);
  // One past int64: still a number, no longer an integer.
  const Value big = parse_ok("9223372036854775808");
  CHECK(big.is_number() && !big.is_integer() && big.as_number() == 9223372036854775808.0);
  CHECK(!parse_ok("1.0").is_integer());
  CHECK(!parse_ok("1e2").is_integer());
}

TEST(fractions_and_exponents) {
  CHECK(parse_ok("1.5").as_number() == 1.5);
  CHECK(parse_ok("-1.5e-3").as_number() == -1.5e-3);
  CHECK(parse_ok("1E+2").as_number() == 100);
  CHECK(parse_ok("1e-05").as_number() == 1e-05);
  CHECK(parse_ok("500000.0").as_number() == 500000.0);
  CHECK(parse_ok("0.1").as_number() == 0.1);  // correctly rounded
  CHECK(fails_with(parse_error("1e400"), "invalid JSON at byte 0: number out of the range of a double"));
}

TEST(malformed_numbers_are_refused) {
  CHECK(fails_with(parse_error("01"), "at byte 0: numbers must not have leading zeros"));
  CHECK(fails_with(parse_error("-"), "expected a digit after '-'"));
  CHECK(fails_with(parse_error("1."), "expected a digit after the decimal point"));
  CHECK(fails_with(parse_error(".5"), "unexpected '.' where a value was expected"));
  CHECK(fails_with(parse_error("1e"), "expected a digit in the exponent"));
  CHECK(fails_with(parse_error("+1"), "unexpected '+'"));
  CHECK(fails_with(parse_error("NaN"), "unexpected 'N'"));
  CHECK(fails_with(parse_error("Infinity"), "unexpected 'I'"));
  CHECK(fails_with(parse_error("0x10"), "at byte 1: unexpected 'x' after the JSON value"));
}

TEST(strings_and_escapes) {
  CHECK(parse_ok(R"("a\"b\\c\/d\b\f\n\r\t")").as_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(parse_ok(R"("\u00e9")").as_string() == "\xC3\xA9");
  CHECK(parse_ok(R"("\u20AC")").as_string() == "\xE2\x82\xAC");
  CHECK(parse_ok(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");  // a surrogate pair
  CHECK(parse_ok(R"("\u0000")").as_string() == std::string(1, '\0'));
  CHECK(parse_ok("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"").as_string() == "caf\xC3\xA9 \xF0\x9F\x98\x80");
  CHECK(parse_ok("\"\"").as_string().empty());
}

TEST(bad_strings_are_refused) {
  CHECK(fails_with(parse_error("\"abc"), "at byte 0: unterminated string"));
  CHECK(fails_with(parse_error(R"("\x")"), "at byte 1: invalid escape \\'x'"));
  CHECK(fails_with(parse_error(R"("\u12")"), "\\u must be followed by four hex digits"));
  CHECK(fails_with(parse_error(R"("\u12G4")"), "\\u must be followed by four hex digits"));
  CHECK(fails_with(parse_error(R"("\ud800")"), "unpaired UTF-16 high surrogate"));
  CHECK(fails_with(parse_error(R"("\ud800\u0041")"), "unpaired UTF-16 high surrogate"));
  CHECK(fails_with(parse_error(R"("\ud800x")"), "unpaired UTF-16 high surrogate"));
  CHECK(fails_with(parse_error(R"("\udc00")"), "unpaired UTF-16 low surrogate"));
  CHECK(fails_with(parse_error("\"a\nb\""), "at byte 2: control character byte 0x0A in a string must be escaped"));
  CHECK(fails_with(parse_error("\"\xFF\""), "at byte 1: invalid UTF-8 in a string"));
  CHECK(fails_with(parse_error("\"\xC0\xAF\""), "invalid UTF-8"));          // overlong '/'
  CHECK(fails_with(parse_error("\"\xE0\x80\xAF\""), "invalid UTF-8"));      // overlong, 3 bytes
  CHECK(fails_with(parse_error("\"\xED\xA0\x80\""), "invalid UTF-8"));      // a surrogate in UTF-8
  CHECK(fails_with(parse_error("\"\xF4\x90\x80\x80\""), "invalid UTF-8"));  // above U+10FFFF
  CHECK(fails_with(parse_error("\"\xE2\x82\""), "invalid UTF-8"));          // cut short
  CHECK(fails_with(parse_error("\"\x80\""), "invalid UTF-8"));              // a lone continuation byte
  CHECK(fails_with(parse_error("'a'"), "unexpected '''"));
}

TEST(arrays_and_objects_keep_document_order) {
  const Value value = parse_ok(R"({"b": [1, "x", null, {}], "a": {"c": []}, "": true})");
  CHECK(value.is_object());
  const Value::Object& members = value.as_object();
  CHECK(members.size() == 3);
  CHECK(members[0].first == "b" && members[1].first == "a" && members[2].first.empty());
  const Value* b = value.find("b");
  CHECK(b != nullptr && b->as_array().size() == 4);
  CHECK(b->as_array()[1].as_string() == "x" && b->as_array()[2].is_null() && b->as_array()[3].is_object());
  CHECK(value.find("a")->find("c")->is_array());
  CHECK(value.find("missing") == nullptr);
  CHECK(parse_ok("[]").as_array().empty());
}

TEST(accessors_are_neutral_on_the_wrong_type) {
  const Value value = parse_ok("\"text\"");
  CHECK(value.type() == Type::kString);
  CHECK(!value.as_bool() && value.as_number() == 0 && value.as_integer() == 0);
  CHECK(value.as_array().empty() && value.as_object().empty() && value.find("x") == nullptr);
  CHECK(std::string(attune::json::type_name(Type::kArray)) == "an array");
}

TEST(structural_errors_name_the_byte) {
  CHECK(fails_with(parse_error(""), "invalid JSON at byte 0: unexpected end of input where a value was expected"));
  CHECK(fails_with(parse_error("[1,]"), "invalid JSON at byte 3: trailing ',' before ']'"));
  CHECK(fails_with(parse_error(R"({"a":1,})"), "invalid JSON at byte 7: trailing ',' before '}'"));
  CHECK(fails_with(parse_error(R"({"a" 1})"), "at byte 5: expected ':' after the key \"a\""));
  CHECK(fails_with(parse_error("{a:1}"), "at byte 1: expected a string key, found 'a'"));
  CHECK(fails_with(parse_error("[1 2]"), "at byte 3: expected ',' or ']' after an array element, found '2'"));
  CHECK(fails_with(parse_error(R"({"a":1 "b":2})"), "expected ',' or '}' after an object member"));
  CHECK(fails_with(parse_error("[1,"), "at byte 3: unexpected end of input where a value was expected"));
  CHECK(fails_with(parse_error("[1"), "unexpected end of input inside an array"));
  CHECK(fails_with(parse_error(R"({"a":1)"), "unexpected end of input inside an object"));
  CHECK(fails_with(parse_error("tru"), "unexpected 't' where a value was expected"));
  CHECK(fails_with(parse_error("1 2"), "at byte 2: unexpected '2' after the JSON value"));
  CHECK(fails_with(parse_error("[1] // comment"), "at byte 4: unexpected '/' after the JSON value"));
  CHECK(fails_with(parse_error("\xEF\xBB\xBF{}"), "at byte 0: the text starts with a UTF-8 byte order mark"));
  CHECK(fails_with(parse_error(std::string("[1,\0]", 5)), "at byte 3: unexpected byte 0x00"));
}

TEST(duplicate_keys_are_refused_at_the_second_one) {
  CHECK(fails_with(parse_error(R"({"a":1,"b":2,"a":3})"), "invalid JSON at byte 13: duplicate key \"a\""));
  CHECK(fails_with(parse_error(R"({"x":{"k":1,"k":1}})"), "at byte 12: duplicate key \"k\""));
  // Escapes are compared after decoding.
  CHECK(fails_with(parse_error(R"({"a":1,"\u0061":2})"), "duplicate key \"a\""));
}

TEST(nesting_depth_is_limited) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  CHECK(succeeds(parse_error(nested(128))));
  CHECK(fails_with(parse_error(nested(129)), "invalid JSON at byte 128: arrays and objects nested more than 128 deep"));
  CHECK(fails_with(parse_error(std::string(100000, '[')), "nested more than 128 deep"));
  Limits shallow;
  shallow.max_depth = 2;
  CHECK(succeeds(parse_error(R"({"a":[1]})", shallow)));
  CHECK(fails_with(parse_error(R"({"a":[[1]]})", shallow), "nested more than 2 deep"));
}

TEST(size_and_value_count_are_limited) {
  Limits limits;
  limits.max_bytes = 8;
  CHECK(succeeds(parse_error("[1,2,3]", limits)));
  CHECK(fails_with(parse_error("[1,2,3,4]", limits), "JSON text of 9 bytes is over the 8-byte limit"));
  limits = Limits();
  limits.max_values = 4;
  CHECK(succeeds(parse_error("[1,2,3]", limits)));
  CHECK(fails_with(parse_error("[1,2,3,4]", limits), "at byte 7: more than 4 values"));
}

TEST(a_failed_parse_leaves_the_output_alone) {
  Value value = parse_ok("[1]");
  CHECK(!attune::json::parse("[2", &value).ok());
  CHECK(value.as_array().size() == 1 && value.as_array()[0].as_integer() == 1);
}

TEST(fields_report_the_file_and_field) {
  const Value config = parse_ok(R"({"heads": 0, "layers": 2, "eps": 1e-5, "name": "x", "flag": true,
                                   "neg": -3, "frac": 1.5, "text": "32", "unset": null, "big": 5000})");
  const Fields fields(config, "config.json");
  int64_t n = 7;
  CHECK(fails_with(fields.positive_int("heads", &n), "config.json: field \"heads\" must be a positive integer"));
  CHECK(fails_with(fields.positive_int("neg", &n), "field \"neg\" must be a positive integer"));
  CHECK(fails_with(fields.positive_int("frac", &n), "field \"frac\" must be a positive integer"));
  CHECK(fails_with(fields.positive_int("text", &n), "field \"text\" must be a positive integer"));
  CHECK(fails_with(fields.positive_int("missing", &n), "field \"missing\" is missing; it must be a positive integer"));
  CHECK(fails_with(fields.positive_int("unset", &n), "field \"unset\" is missing"));
  CHECK(fails_with(fields.positive_int("big", &n, 4096), "field \"big\" is 5000; at most 4096 is supported"));
  CHECK(n == 7);
  CHECK(succeeds(fields.positive_int("layers", &n)) && n == 2);
  CHECK(succeeds(fields.optional_positive_int("missing", &n)) && n == 2);
  CHECK(succeeds(fields.optional_positive_int("unset", &n)) && n == 2);
  double eps = 0;
  CHECK(succeeds(fields.positive_number("eps", &eps)) && eps == 1e-5);
  CHECK(succeeds(fields.positive_number("layers", &eps)) && eps == 2);
  CHECK(fails_with(fields.positive_number("neg", &eps), "field \"neg\" must be a positive number"));
  bool flag = false;
  CHECK(succeeds(fields.optional_bool("flag", &flag)) && flag);
  CHECK(fails_with(fields.optional_bool("name", &flag), "field \"name\" must be true or false"));
  std::string name;
  CHECK(succeeds(fields.string("name", &name)) && name == "x");
  CHECK(fails_with(fields.string("layers", &name), "field \"layers\" must be a string, not a number"));
  CHECK(fails_with(fields.only({"heads", "layers"}), "config.json: unexpected field \"eps\""));
  CHECK(fields.get("unset") == nullptr && fields.get("heads") != nullptr);
}
