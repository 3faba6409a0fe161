#include "flipless/data/split.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "flipless/core/error.h"
#include "flipless/core/hash.h"

namespace flipless::data {

TrainValidationSplit split_train_validation(const Dataset& train, double validation_fraction, std::uint64_t seed) {
  if (!(validation_fraction > 0.0 && validation_fraction < 1.0)) {
    throw ConfigError(fmt::format("validation fraction must be between 0 and 1 (exclusive), got {}", validation_fraction));
  }
  if (!train.has_labels()) throw InputError(fmt::format("{}: a stratified split needs labels", train.name));
  // Per label: (hash, position), sorted by hash; ties (never in practice) by id.
  std::vector<std::vector<std::pair<std::uint64_t, std::size_t>>> by_label(train.num_labels());
  for (std::size_t i = 0; i < train.size(); ++i) {
    const auto& ex = train.examples[i];
    by_label[static_cast<std::size_t>(ex.label)].emplace_back(core::hash64(ex.id, seed), i);
  }
  std::vector<bool> to_validation(train.size(), false);
  for (auto& group : by_label) {
    std::sort(group.begin(), group.end(), [&](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : train.examples[a.second].id < train.examples[b.second].id;
    });
    const auto take = static_cast<std::size_t>(std::llround(validation_fraction * static_cast<double>(group.size())));
    for (std::size_t k = 0; k < take && k < group.size(); ++k) to_validation[group[k].second] = true;
  }
  TrainValidationSplit out;
  out.train.name = train.name + "[train]";
  out.validation.name = train.name + "[validation]";
  out.train.label_names = out.validation.label_names = train.label_names;
  for (std::size_t i = 0; i < train.size(); ++i) {
    (to_validation[i] ? out.validation : out.train).examples.push_back(train.examples[i]);
  }
  return out;
}

Dataset subsample(const Dataset& ds, std::size_t n, std::uint64_t seed) {
  if (n == 0 || n >= ds.size()) return ds;
  std::vector<std::pair<std::uint64_t, std::size_t>> order;
  for (std::size_t i = 0; i < ds.size(); ++i) order.emplace_back(core::hash64(ds.examples[i].id, seed + 1), i);
  std::sort(order.begin(), order.end());
  Dataset out;
  out.name = fmt::format("{}[{} of {}]", ds.name, n, ds.size());
  out.label_names = ds.label_names;
  std::vector<std::size_t> keep;
  for (std::size_t k = 0; k < n; ++k) keep.push_back(order[k].second);
  std::sort(keep.begin(), keep.end());
  for (auto i : keep) out.examples.push_back(ds.examples[i]);
  return out;
}

Dataset rows_of(const Dataset& ds, const std::vector<std::int64_t>& rows) {
  Dataset part;
  part.name = ds.name;
  part.label_names = ds.label_names;
  part.examples.reserve(rows.size());
  for (const auto r : rows) {
    if (r < 0 || static_cast<std::size_t>(r) >= ds.size()) {
      throw InputError(fmt::format("{}: row {} out of range (the dataset has {} rows)", ds.name, r, ds.size()));
    }
    part.examples.push_back(ds.examples[static_cast<std::size_t>(r)]);
  }
  return part;
}

}  // namespace flipless::data
