#include "builder.h"

#include <algorithm>
#include <charconv>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>

#include "flipless/core/error.h"
#include "flipless/core/hash.h"
#include "flipless/core/utf8.h"

namespace flipless::data::detail {

namespace {
bool is_integer(std::string_view s) {
  long long v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}
long long to_integer(std::string_view s) {
  long long v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}
}  // namespace

DatasetBuilder::DatasetBuilder(std::string source, std::vector<std::string> label_names, bool labelled)
    : source_(std::move(source)),
      label_names_(std::move(label_names)),
      fixed_labels_(!label_names_.empty()),
      labelled_(labelled) {}

void DatasetBuilder::check_utf8(std::size_t line, std::string_view column, std::string_view value) const {
  if (const auto bad = core::find_invalid_utf8(value)) {
    throw InputError(fmt::format("{}:{}: column '{}': invalid UTF-8 at byte {} of the field", source_, line,
                                 column, *bad + 1));
  }
}

void DatasetBuilder::add(std::size_t line, std::string id, std::string text_a, std::optional<std::string> text_b,
                         std::string label, std::string_view id_column, std::string_view text_column,
                         std::string_view pair_column, std::string_view label_column) {
  check_utf8(line, text_column, text_a);
  if (text_b) check_utf8(line, pair_column, *text_b);
  TextExample ex;
  if (!id_column.empty()) {
    check_utf8(line, id_column, id);
    if (id.empty()) throw InputError(fmt::format("{}:{}: column '{}': empty id", source_, line, id_column));
    const auto [it, inserted] = id_line_.emplace(id, line);
    if (!inserted) {
      throw InputError(fmt::format("{}:{}: column '{}': duplicate id '{}' (first on line {})", source_, line,
                                   id_column, id, it->second));
    }
    ex.id = std::move(id);
  } else {
    // Identical texts get "-2", "-3", ... in file order, so ids stay unique and stable.
    std::string hashed = core::content_id(text_a, text_b);
    const std::size_t seen = ++content_count_[hashed];
    ex.id = seen == 1 ? std::move(hashed) : fmt::format("{}-{}", hashed, seen);
  }
  if (labelled_) {
    check_utf8(line, label_column, label);
    if (fixed_labels_) {
      const auto it = std::find(label_names_.begin(), label_names_.end(), label);
      if (it == label_names_.end()) {
        throw InputError(fmt::format("{}:{}: column '{}': label '{}' is not in the label set [{}]", source_, line,
                                     label_column, label, fmt::join(label_names_, ", ")));
      }
      ex.label = static_cast<std::int32_t>(it - label_names_.begin());
    } else {
      if (label.empty()) throw InputError(fmt::format("{}:{}: column '{}': empty label", source_, line, label_column));
      raw_labels_.push_back(std::move(label));
    }
  }
  ex.text_a = std::move(text_a);
  ex.text_b = std::move(text_b);
  examples_.push_back(std::move(ex));
}

Dataset DatasetBuilder::finish(std::string name) && {
  if (examples_.empty()) throw InputError(fmt::format("{}: no data rows", source_));
  Dataset ds;
  ds.name = std::move(name);
  if (labelled_ && !fixed_labels_) {
    std::set<std::string> unique(raw_labels_.begin(), raw_labels_.end());
    label_names_.assign(unique.begin(), unique.end());
    const bool all_int = std::all_of(label_names_.begin(), label_names_.end(), [](const std::string& s) { return is_integer(s); });
    if (all_int) {
      std::sort(label_names_.begin(), label_names_.end(),
                [](const std::string& a, const std::string& b) { return to_integer(a) < to_integer(b); });
    }
    std::unordered_map<std::string_view, std::int32_t> index;
    for (std::size_t i = 0; i < label_names_.size(); ++i) index.emplace(label_names_[i], static_cast<std::int32_t>(i));
    for (std::size_t i = 0; i < examples_.size(); ++i) examples_[i].label = index.at(raw_labels_[i]);
  }
  ds.label_names = std::move(label_names_);
  ds.examples = std::move(examples_);
  return ds;
}

}  // namespace flipless::data::detail
