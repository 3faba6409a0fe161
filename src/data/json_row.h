#pragma once
// JSON Lines rows read with simdjson's On-Demand parser (Debian: libsimdjson-dev). Every value of
// a row is validated, kept or not, so a malformed value anywhere in the row is an error as with any
// strict parser; only the members asked for are kept: strings decoded to UTF-8, numbers with the
// text they were written as (integer labels stay exact), arrays of numbers as doubles. Nesting is
// limited so hostile input cannot exhaust the stack. simdjson stays inside json_row.cc.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flipless::data::detail {

enum class JsonKind { kNull, kBool, kNumber, kString, kArray, kObject };

// A short description of a kind for error messages ("string", "array", ...).
const char* json_kind_name(JsonKind kind);

// One member of a row that was asked for, as read.
struct JsonField {
  bool present = false;
  JsonKind kind = JsonKind::kNull;
  std::string text;             // kString: decoded; kNumber: the number as written
  double number = 0.0;          // kNumber
  bool all_numbers = false;     // kArray: every item is a number
  std::vector<double> numbers;  // kArray with all_numbers: the items
};

// Invalid JSON, with the 1-based byte column of the problem.
struct JsonSyntaxError {
  std::size_t column;
  std::string message;
};

// A problem inside one top-level member's value that is best named by the member's key
// ("field 'id': invalid UTF-8").
struct JsonFieldError {
  std::string field;
  std::string message;
};

// Reads rows one after another, reusing its buffers; not thread-safe.
class JsonRowParser {
 public:
  JsonRowParser();
  ~JsonRowParser();
  JsonRowParser(const JsonRowParser&) = delete;
  JsonRowParser& operator=(const JsonRowParser&) = delete;

  // Reads `line` as one JSON value. When it is an object, fields[i] gets its first member named
  // keys[i] (present = false when there is none) and the object is returned as kObject; for any
  // other kind of value, only that kind is returned. Throws JsonSyntaxError or JsonFieldError.
  JsonKind read_object(std::string_view line, std::span<const std::string_view> keys, std::span<JsonField> fields);

  // Reads `text` as a JSON array of numbers into `out`; false when it is valid JSON of another
  // shape. Throws JsonSyntaxError.
  bool read_number_array(std::string_view text, std::vector<double>& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flipless::data::detail
