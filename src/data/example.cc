#include "flipless/data/example.h"

namespace flipless::data {

std::vector<std::int32_t> Dataset::labels() const {
  std::vector<std::int32_t> out;
  out.reserve(examples.size());
  for (const auto& ex : examples) out.push_back(ex.label);
  return out;
}

std::unordered_map<std::string_view, std::size_t> Dataset::index_by_id() const {
  std::unordered_map<std::string_view, std::size_t> index;
  index.reserve(examples.size());
  for (std::size_t i = 0; i < examples.size(); ++i) index.emplace(examples[i].id, i);
  return index;
}

std::vector<std::size_t> Dataset::label_counts() const {
  std::vector<std::size_t> counts(label_names.size(), 0);
  for (const auto& ex : examples) {
    if (ex.label >= 0 && static_cast<std::size_t>(ex.label) < counts.size()) ++counts[static_cast<std::size_t>(ex.label)];
  }
  return counts;
}

}  // namespace flipless::data
