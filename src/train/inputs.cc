#include "flipless/train/inputs.h"

#include <torch/torch.h>

#include <algorithm>

namespace flipless::train {

torch::Tensor label_tensor(const data::Dataset& dataset) {
  auto labels = torch::empty({static_cast<std::int64_t>(dataset.size())}, torch::kInt64);
  auto* p = labels.data_ptr<std::int64_t>();
  for (std::size_t i = 0; i < dataset.size(); ++i) p[i] = dataset.examples[i].label;
  return labels;
}

FeatureSource::FeatureSource(torch::Tensor features, torch::Tensor labels)
    : features_(std::move(features)), labels_(std::move(labels)) {}

nn::ModelInputs FeatureSource::batch(const std::vector<std::int64_t>& rows) const {
  nn::ModelInputs in;
  in.features = features_.index_select(0, torch::tensor(rows, torch::kInt64));
  return in;
}

TokenSource::TokenSource(const text::WordPieceTokenizer& tokenizer, const data::Dataset& dataset, std::size_t max_length)
    : labels_(label_tensor(dataset)), pad_id_(tokenizer.pad_id()) {
  encodings_.reserve(dataset.size());
  for (const auto& ex : dataset.examples) {
    encodings_.push_back(tokenizer.encode(ex.text_a, ex.text_b ? std::optional<std::string_view>(*ex.text_b) : std::nullopt, max_length));
  }
}

nn::ModelInputs TokenSource::batch(const std::vector<std::int64_t>& rows) const {
  std::size_t longest = 0;
  for (auto r : rows) longest = std::max(longest, encodings_[static_cast<std::size_t>(r)].size());
  const auto b = static_cast<std::int64_t>(rows.size()), s = static_cast<std::int64_t>(longest);
  auto ids = torch::full({b, s}, pad_id_, torch::kInt64);
  auto types = torch::zeros({b, s}, torch::kInt64);
  auto mask = torch::zeros({b, s}, torch::kInt64);
  auto* pi = ids.data_ptr<std::int64_t>();
  auto* pt = types.data_ptr<std::int64_t>();
  auto* pm = mask.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < b; ++i) {
    const auto& e = encodings_[static_cast<std::size_t>(rows[static_cast<std::size_t>(i)])];
    for (std::size_t j = 0; j < e.size(); ++j) {
      pi[i * s + static_cast<std::int64_t>(j)] = e.input_ids[j];
      pt[i * s + static_cast<std::int64_t>(j)] = e.token_type_ids[j];
      pm[i * s + static_cast<std::int64_t>(j)] = 1;
    }
  }
  return {torch::Tensor(), ids, types, mask};
}

}  // namespace flipless::train
