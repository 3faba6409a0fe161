#pragma once
// Shared by every dataset reader: validates fields, assigns stable ids and resolves labels,
// with errors that name `source:line` and the column.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "flipless/data/example.h"

namespace flipless::data::detail {

class DatasetBuilder {
 public:
  // `label_names` fixed (GLUE, or given by the user): labels must be among them. Empty: the
  // label set is inferred when the dataset is finished. `labelled` false: no labels at all.
  DatasetBuilder(std::string source, std::vector<std::string> label_names, bool labelled);

  // Adds one row. `id` empty means "no id column": a content hash is used. Column names are
  // only used in error messages.
  void add(std::size_t line, std::string id, std::string text_a, std::optional<std::string> text_b,
           std::string label, std::string_view id_column, std::string_view text_column,
           std::string_view pair_column, std::string_view label_column);

  // Finishes the dataset; throws InputError when it has no rows.
  Dataset finish(std::string name) &&;

 private:
  void check_utf8(std::size_t line, std::string_view column, std::string_view value) const;

  std::string source_;
  std::vector<std::string> label_names_;
  bool fixed_labels_;
  bool labelled_;
  std::unordered_map<std::string, std::size_t> id_line_;        // explicit id -> first line
  std::unordered_map<std::string, std::size_t> content_count_;  // content hash -> occurrences
  std::vector<std::string> raw_labels_;                         // when the label set is inferred
  std::vector<TextExample> examples_;
};

}  // namespace flipless::data::detail
