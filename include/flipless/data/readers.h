#pragma once
// Generic readers for CSV (RFC 4180 quoting), TSV (no quoting) and JSON Lines, with columns
// chosen by the user. Every parse error is a flipless::InputError naming `path:line` and the
// column or field.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "flipless/core/file.h"
#include "flipless/data/example.h"

namespace flipless::data {

enum class TableFormat { kCsv, kTsv, kJsonl };

// Which columns (CSV/TSV header names, JSONL keys) hold what. Defaults fit most files.
struct ColumnSpec {
  std::string text = "text";       // required
  std::string text_pair;           // empty: single-text task
  std::string label = "label";     // empty: unlabelled data
  std::string id;                  // empty: the "id" column when the file has one (JSONL: when
                                   // its first row has one), else content hashes of the text(s)
  bool hash_ids = false;           // ids are content hashes even when there is an "id" column
  std::vector<std::string> label_names;  // empty: the sorted set of labels found
};

// The format a file name implies (.csv, .tsv, .jsonl/.json, each optionally .gz).
// Throws InputError for any other extension.
TableFormat format_from_path(const std::filesystem::path& path);

// Parses a whole file already in memory.
Dataset read_table(const core::InputFile& file, TableFormat format, const ColumnSpec& columns);

// Opens and parses `path`; the format comes from its extension.
Dataset read_table_file(const std::filesystem::path& path, const ColumnSpec& columns);

}  // namespace flipless::data
