#include "json_row.h"

#include <simdjson.h>

#include <charconv>
#include <optional>
#include <system_error>
#include <utility>

#include "flipless/core/assert.h"
#include "flipless/core/utf8.h"

namespace flipless::data::detail {

namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

constexpr int kMaxDepth = 64;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

JsonKind kind_of(od::json_type type) {
  switch (type) {
    case od::json_type::array: return JsonKind::kArray;
    case od::json_type::object: return JsonKind::kObject;
    case od::json_type::number: return JsonKind::kNumber;
    case od::json_type::string: return JsonKind::kString;
    case od::json_type::boolean: return JsonKind::kBool;
    case od::json_type::null: return JsonKind::kNull;
  }
  return JsonKind::kNull;
}

// simdjson reports some errors without a position; these read it from the text, knowing only
// which bytes lie inside strings. Errors are rare, so they may take a second pass.

// The offset of the first control character inside a string, if any.
std::optional<std::size_t> control_in_string(std::string_view line) {
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string && static_cast<unsigned char>(c) < 0x20) return i;
    if (escaped) escaped = false;
    else if (in_string && c == '\\') escaped = true;
    else if (c == '"') in_string = !in_string;
  }
  return std::nullopt;
}

// The raw key of the top-level member whose key or value holds byte `offset`.
struct MemberAt {
  bool found = false;
  bool in_key = false;
  std::string key;
};

MemberAt member_at(std::string_view line, std::size_t offset) {
  MemberAt at;
  bool in_string = false, escaped = false, string_is_key = false, expect_key = false;
  int depth = 0;
  std::size_t key_start = 0;
  for (std::size_t i = 0; i < offset && i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') {
        in_string = false;
        if (string_is_key) at.key.assign(line.substr(key_start, i - key_start)), at.found = true;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      string_is_key = depth == 1 && expect_key;
      if (string_is_key) key_start = i + 1, expect_key = false;
    } else if (c == '{' || c == '[') {
      ++depth;
      expect_key = c == '{' && depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  at.in_key = in_string && string_is_key;
  if (depth < 1) at.found = false;
  return at;
}

// Calls `f(i, c)` for each bracket of `line` before `limit` that is not inside a string; stops
// when `f` returns true.
template <typename F>
void for_each_bracket(std::string_view line, std::size_t limit, F&& f) {
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < limit && i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if ((c == '{' || c == '[' || c == '}' || c == ']') && f(i, c)) {
      return;
    }
  }
}

// The offset just past the first complete JSON value of the line, when brackets close before the
// line ends (text after the value); nullopt when they never close.
std::optional<std::size_t> end_of_value(std::string_view line) {
  int depth = 0;
  std::optional<std::size_t> end;
  for_each_bracket(line, line.size(), [&](std::size_t i, char c) {
    if (c == '{' || c == '[') {
      ++depth;
      return false;
    }
    if (--depth != 0) return false;
    end = i + 1;
    return true;
  });
  return end;
}

// Whether byte `offset` lies directly inside an array (else an object), by the innermost bracket
// open before it.
bool inside_array(std::string_view line, std::size_t offset) {
  std::string open;
  for_each_bracket(line, offset, [&](std::size_t, char c) {
    if (c == '{' || c == '[') {
      open += c;
    } else if (!open.empty()) {
      open.pop_back();
    }
    return false;
  });
  return !open.empty() && open.back() == '[';
}

// What was expected at `offset`, where simdjson found the structure broken, judged by the text
// before it.
std::string expected_at(std::string_view line, std::size_t offset) {
  const bool in_array = inside_array(line, offset);
  std::size_t p = offset;
  while (p > 0 && is_space(line[p - 1])) --p;
  if (p == 0) return "expected a JSON value";
  const char prev = line[p - 1];
  if (in_array) return prev == '[' || prev == ',' ? "expected a JSON value" : "expected ',' or ']'";
  if (prev == '{' || prev == ',') return "expected a string key";
  if (prev == ':') return "expected a JSON value";
  if (prev == '"' && p >= 2) {
    // A string just ended: after a key comes ':', after a value ',' or '}'.
    std::size_t open = p - 1;
    while (open > 0) {
      --open;
      if (line[open] != '"') continue;
      std::size_t backslashes = 0;
      while (open > backslashes && line[open - 1 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) break;
    }
    while (open > 0 && is_space(line[open - 1])) --open;
    if (open > 0 && (line[open - 1] == '{' || line[open - 1] == ',')) return "expected ':'";
  }
  return "expected ',' or '}'";
}

}  // namespace

const char* json_kind_name(JsonKind kind) {
  switch (kind) {
    case JsonKind::kNull: return "null";
    case JsonKind::kBool: return "boolean";
    case JsonKind::kNumber: return "number";
    case JsonKind::kString: return "string";
    case JsonKind::kArray: return "array";
    case JsonKind::kObject: return "object";
  }
  return "value";
}

struct JsonRowParser::Impl {
  od::parser parser;
  std::string buffer;    // the text being read, followed by simdjson's padding
  std::string_view line;
  od::document doc;

  // Starts reading `text`; with `name_members`, invalid UTF-8 is blamed on the top-level member holding it.
  void load(std::string_view text, bool name_members) {
    line = text;
    buffer.assign(text);
    buffer.resize(text.size() + simdjson::SIMDJSON_PADDING);
    const error_code e = parser.iterate(buffer.data(), text.size(), buffer.size()).get(doc);
    if (e) failed_before_reading(e, name_members);
  }

  [[noreturn]] static void syntax(std::size_t offset, std::string message) {
    throw JsonSyntaxError{offset + 1, std::move(message)};
  }

  // Errors of simdjson's first pass (over the whole line), located here.
  [[noreturn]] void failed_before_reading(error_code e, bool name_members) const {
    switch (e) {
      case simdjson::UTF8_ERROR: {
        const std::size_t offset = core::find_invalid_utf8(line).value_or(0);
        const MemberAt at = member_at(line, offset);
        if (name_members && at.found && !at.in_key) throw JsonFieldError{at.key, "invalid UTF-8"};
        syntax(offset, "invalid UTF-8");
      }
      case simdjson::UNESCAPED_CHARS: syntax(control_in_string(line).value_or(0), "control character in string");
      case simdjson::UNCLOSED_STRING: syntax(line.size(), "unterminated string");
      case simdjson::EMPTY: syntax(0, "expected a JSON value");
      default: syntax(0, simdjson::error_message(e));
    }
  }

  std::size_t offset_of(const char* p) const { return static_cast<std::size_t>(p - buffer.data()); }

  // Where simdjson stopped: the line's end when it ran out of text.
  std::size_t here() {
    const char* p = nullptr;
    if (doc.current_location().get(p) != simdjson::SUCCESS) return line.size();
    return offset_of(p);
  }

  [[noreturn]] void failed(error_code e) {
    const std::size_t at = here();
    switch (e) {
      case simdjson::STRING_ERROR: syntax(at, "invalid escape or unpaired surrogate in string");
      case simdjson::T_ATOM_ERROR:
      case simdjson::F_ATOM_ERROR:
      case simdjson::N_ATOM_ERROR: syntax(at, "expected a JSON value");
      case simdjson::DEPTH_ERROR: syntax(at, "JSON nested too deeply");
      case simdjson::TAPE_ERROR:
      case simdjson::INCORRECT_TYPE:
        syntax(at, expected_at(line, at));
      case simdjson::INCOMPLETE_ARRAY_OR_OBJECT: {
        // The first bracket is not closed by the last: either it never closes or text follows.
        const auto end = end_of_value(line);
        if (!end) syntax(line.size(), "unexpected end of the line: unclosed object or array");
        std::size_t next = *end;
        while (next < line.size() && is_space(line[next])) ++next;
        syntax(next, "unexpected text after the JSON value");
      }
      default: syntax(at, simdjson::error_message(e));
    }
  }

  // After the value: only whitespace may follow.
  void expect_end() {
    const char* p = nullptr;
    if (doc.current_location().get(p) == simdjson::SUCCESS) syntax(offset_of(p), "unexpected text after the JSON value");
  }

  // A number, checked; its text as written goes to `text` when given.
  double number(od::value& v, std::string* text) {
    const std::string_view raw = trim_right(v.raw_json_token());
    double d = 0.0;
    if (v.get_double().get(d) != simdjson::SUCCESS) {
      double ignored = 0.0;
      const auto [end, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), ignored);
      const bool too_large = ec == std::errc::result_out_of_range && end == raw.data() + raw.size();
      syntax(offset_of(raw.data()), too_large ? "number out of range" : "invalid number");
    }
    if (text != nullptr) text->assign(raw);
    return d;
  }

  // Reads and checks one value and everything in it; keeps it in `out` when given.
  void value(od::value v, int depth, JsonField* out) {
    if (depth > kMaxDepth) syntax(here(), "JSON nested too deeply");
    od::json_type type{};
    if (const error_code e = v.type().get(type)) failed(e);
    if (out != nullptr) out->kind = kind_of(type);
    switch (type) {
      case od::json_type::object: {
        od::object object;
        if (const error_code e = v.get_object().get(object)) failed(e);
        members(object, depth + 1, {}, {});
        return;
      }
      case od::json_type::array: {
        od::array array;
        if (const error_code e = v.get_array().get(array)) failed(e);
        if (out != nullptr) out->all_numbers = true, out->numbers.clear();
        items(array, depth + 1, out);
        return;
      }
      case od::json_type::number: {
        const double d = number(v, out != nullptr ? &out->text : nullptr);
        if (out != nullptr) out->number = d;
        return;
      }
      case od::json_type::string: {
        std::string_view s;
        const char* start = v.raw_json_token().data();
        if (v.get_string().get(s) != simdjson::SUCCESS) syntax(offset_of(start), "invalid escape or unpaired surrogate in string");
        if (out != nullptr) out->text.assign(s);
        return;
      }
      case od::json_type::boolean: {
        bool b = false;
        if (const error_code e = v.get_bool().get(b)) failed(e);
        return;
      }
      case od::json_type::null: {
        bool null = false;
        if (const error_code e = v.is_null().get(null)) failed(e);
        if (!null) syntax(here(), "expected a JSON value");
        return;
      }
    }
  }

  // The items of an array; with `out`, numbers are collected while every item is one.
  void items(od::array& array, int depth, JsonField* out) {
    for (auto item : array) {
      od::value v;
      if (const error_code e = std::move(item).get(v)) failed(e);
      if (out != nullptr && out->all_numbers) {
        od::json_type type{};
        if (const error_code e = v.type().get(type)) failed(e);
        if (type == od::json_type::number) {
          out->numbers.push_back(number(v, nullptr));
          continue;
        }
        out->all_numbers = false;
        out->numbers.clear();
      }
      value(v, depth, nullptr);
    }
  }

  // The members of an object; fields[i] gets the first member named keys[i].
  void members(od::object& object, int depth, std::span<const std::string_view> keys, std::span<JsonField> fields) {
    for (auto member : object) {
      od::field field;
      if (const error_code e = std::move(member).get(field)) failed(e);
      std::string_view key;
      if (const error_code e = field.unescaped_key().get(key)) failed(e);
      JsonField* out = nullptr;
      std::size_t first = 0;
      for (; first < keys.size(); ++first) {
        if (!fields[first].present && keys[first] == key) {
          out = &fields[first];
          break;
        }
      }
      value(field.value(), depth, out);
      if (out == nullptr) continue;
      out->present = true;
      // The same key asked for twice (an id column that is also the label) gets the value twice.
      for (std::size_t i = first + 1; i < keys.size(); ++i) {
        if (!fields[i].present && keys[i] == keys[first]) fields[i] = *out;
      }
    }
  }
};

JsonRowParser::JsonRowParser() : impl_(std::make_unique<Impl>()) {}
JsonRowParser::~JsonRowParser() = default;

JsonKind JsonRowParser::read_object(std::string_view line, std::span<const std::string_view> keys, std::span<JsonField> fields) {
  FLIPLESS_ASSERT(keys.size() == fields.size(), "one field per key");
  for (auto& field : fields) field.present = false;
  Impl& p = *impl_;
  p.load(line, true);
  od::json_type type{};
  if (const error_code e = p.doc.type().get(type)) p.failed(e);
  if (type != od::json_type::object) return kind_of(type);
  od::object object;
  if (const error_code e = p.doc.get_object().get(object)) p.failed(e);
  p.members(object, 1, keys, fields);
  p.expect_end();
  return JsonKind::kObject;
}

bool JsonRowParser::read_number_array(std::string_view text, std::vector<double>& out) {
  Impl& p = *impl_;
  p.load(text, false);
  od::json_type type{};
  if (const error_code e = p.doc.type().get(type)) p.failed(e);
  if (type != od::json_type::array) return false;
  od::array array;
  if (const error_code e = p.doc.get_array().get(array)) p.failed(e);
  JsonField field;
  field.all_numbers = true;
  p.items(array, 1, &field);
  p.expect_end();
  out = std::move(field.numbers);
  return field.all_numbers;
}

}  // namespace flipless::data::detail
