#pragma once
// A strict parser for one JSON value per line (JSON Lines). It keeps the raw text of numbers
// so integer labels stay exact, decodes string escapes (including surrogate pairs) to UTF-8,
// and limits nesting so hostile input cannot exhaust the stack.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flipless::data::detail {

struct JsonMember;

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string text;  // decoded string, or the raw text of a number
  std::vector<JsonValue> items;
  std::vector<JsonMember> members;  // object members in file order

  // The member named `key`, or nullptr.
  const JsonValue* find(std::string_view key) const;
};

struct JsonMember {
  std::string key;
  JsonValue value;
};

// Thrown by parse_json_line with the 1-based byte column of the problem.
struct JsonSyntaxError {
  std::size_t column;
  std::string message;
};

// Parses `line` as exactly one JSON value (whitespace around it allowed).
JsonValue parse_json_line(std::string_view line);

// A short description of a value's kind for error messages ("string", "array", ...).
const char* json_kind_name(JsonValue::Kind kind);

}  // namespace flipless::data::detail
