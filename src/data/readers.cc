#include "flipless/data/readers.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "builder.h"
#include "delimited.h"
#include "flipless/core/error.h"
#include "json_row.h"

namespace flipless::data {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::size_t column_index(const std::vector<std::string>& header, const std::string& name, const std::string& source) {
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return i;
  }
  throw InputError(fmt::format("{}:1: missing column '{}' (the header has: {})", source, name, fmt::join(header, ", ")));
}

Dataset read_delimited(const core::InputFile& file, char delimiter, bool quoting, const ColumnSpec& columns) {
  const std::string& source = file.source();
  if (file.bytes().empty()) throw InputError(fmt::format("{}: file is empty", source));
  detail::DelimitedReader reader(file.bytes(), delimiter, quoting);
  std::vector<std::string> header;
  std::vector<std::string> fields;
  try {
    if (!reader.next(header)) throw InputError(fmt::format("{}: file is empty", source));
    const std::size_t text = column_index(header, columns.text, source);
    const std::size_t none = static_cast<std::size_t>(-1);
    const std::size_t pair = columns.text_pair.empty() ? none : column_index(header, columns.text_pair, source);
    const std::size_t label = columns.label.empty() ? none : column_index(header, columns.label, source);
    // An "id" column is the id unless told otherwise (prediction files carry ids by that name).
    std::string id_name = columns.id;
    if (id_name.empty() && !columns.hash_ids && std::find(header.begin(), header.end(), "id") != header.end())
      id_name = "id";
    const std::size_t id = id_name.empty() ? none : column_index(header, id_name, source);
    detail::DatasetBuilder builder(source, columns.label_names, label != none);
    while (reader.next(fields)) {
      if (fields.size() != header.size()) {
        throw InputError(fmt::format("{}:{}: expected {} fields as in the header, found {}", source, reader.line(),
                                     header.size(), fields.size()));
      }
      // The id is copied first: its column may also be the text or the label, moved below.
      std::string row_id = id == none ? std::string() : fields[id];
      builder.add(reader.line(), std::move(row_id), std::move(fields[text]),
                  pair == none ? std::nullopt : std::optional<std::string>(std::move(fields[pair])),
                  label == none ? std::string() : std::move(fields[label]), id_name, columns.text, columns.text_pair,
                  columns.label);
    }
    return std::move(builder).finish(source);
  } catch (const detail::DelimitedSyntaxError& e) {
    throw InputError(fmt::format("{}:{}: {}", source, e.line, e.message));
  }
}

// A JSONL field as text: strings as they are, numbers by their literal; else an error.
std::string json_field_text(const detail::JsonField& value, std::string_view key, bool allow_number,
                            const std::string& source, std::size_t line) {
  using Kind = detail::JsonKind;
  if (!value.present) throw InputError(fmt::format("{}:{}: missing field '{}'", source, line, key));
  if (value.kind == Kind::kString) return value.text;
  if (allow_number && value.kind == Kind::kNumber) return value.text;
  throw InputError(fmt::format("{}:{}: field '{}': expected a {}, found a {}", source, line, key,
                               allow_number ? "string or number" : "string", detail::json_kind_name(value.kind)));
}

Dataset read_jsonl(const core::InputFile& file, const ColumnSpec& columns) {
  const std::string& source = file.source();
  if (file.bytes().empty()) throw InputError(fmt::format("{}: file is empty", source));
  detail::DatasetBuilder builder(source, columns.label_names, !columns.label.empty());
  // The members each row is read for: "id" (is there one?), the text, and the optional columns.
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::string_view> keys{"id", columns.text};
  auto key = [&](const std::string& name) {
    if (name.empty()) return kNone;
    keys.push_back(name);
    return keys.size() - 1;
  };
  const std::size_t id_key = 0, text_key = 1, pair_key = key(columns.text_pair), label_key = key(columns.label),
                    named_id_key = key(columns.id);
  std::vector<detail::JsonField> fields(keys.size());
  detail::JsonRowParser parser;
  // An "id" field is the id unless told otherwise; whether there is one is decided by the first
  // row, and then every row must agree.
  std::string id_name = columns.id;
  std::size_t first_line = 0;
  core::LineCursor lines(file.bytes());
  std::string_view line;
  while (lines.next(line)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::size_t n = lines.line_number();
    detail::JsonKind kind = detail::JsonKind::kNull;
    try {
      kind = parser.read_object(line, keys, fields);
    } catch (const detail::JsonSyntaxError& e) {
      throw InputError(fmt::format("{}:{}:{}: invalid JSON: {}", source, n, e.column, e.message));
    } catch (const detail::JsonFieldError& e) {
      throw InputError(fmt::format("{}:{}: field '{}': {}", source, n, e.field, e.message));
    }
    if (kind != detail::JsonKind::kObject) {
      throw InputError(fmt::format("{}:{}: expected a JSON object, found a {}", source, n, detail::json_kind_name(kind)));
    }
    const bool has_id = fields[id_key].present;
    if (first_line == 0) {
      first_line = n;
      if (id_name.empty() && !columns.hash_ids && has_id) id_name = "id";
    } else if (id_name.empty() && !columns.hash_ids && has_id) {
      throw InputError(
          fmt::format("{}:{}: field 'id': present here but not on line {}; give every row an id, or pass --hash-ids",
                      source, n, first_line));
    }
    std::string id;
    if (!id_name.empty()) id = json_field_text(fields[named_id_key != kNone ? named_id_key : id_key], id_name, true, source, n);
    std::string text = json_field_text(fields[text_key], columns.text, false, source, n);
    std::optional<std::string> pair;
    if (pair_key != kNone) pair = json_field_text(fields[pair_key], columns.text_pair, false, source, n);
    std::string label = label_key == kNone ? std::string() : json_field_text(fields[label_key], columns.label, true, source, n);
    builder.add(n, std::move(id), std::move(text), std::move(pair), std::move(label), id_name, columns.text,
                columns.text_pair, columns.label);
  }
  return std::move(builder).finish(source);
}

}  // namespace

TableFormat format_from_path(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  if (ends_with(name, ".csv")) return TableFormat::kCsv;
  if (ends_with(name, ".tsv")) return TableFormat::kTsv;
  if (ends_with(name, ".jsonl") || ends_with(name, ".json")) return TableFormat::kJsonl;
  throw InputError(fmt::format("{}: cannot tell the format from the file name (expected .csv, .tsv or .jsonl)", path.string()));
}

Dataset read_table(const core::InputFile& file, TableFormat format, const ColumnSpec& columns) {
  if (columns.text.empty()) throw ConfigError("the text column name must not be empty");
  if (!columns.id.empty() && columns.hash_ids)
    throw ConfigError("an id column and content-hash ids exclude each other: give one");
  switch (format) {
    case TableFormat::kCsv: return read_delimited(file, ',', true, columns);
    case TableFormat::kTsv: return read_delimited(file, '\t', false, columns);
    case TableFormat::kJsonl: return read_jsonl(file, columns);
  }
  throw ConfigError("unknown table format");
}

Dataset read_table_file(const std::filesystem::path& path, const ColumnSpec& columns) {
  const TableFormat format = format_from_path(path);
  return read_table(core::InputFile::open(path), format, columns);
}

}  // namespace flipless::data
