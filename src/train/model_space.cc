#include "flipless/train/model_space.h"

#include <torch/torch.h>

#include <algorithm>
#include <fmt/format.h>

#include "flipless/core/error.h"
#include "flipless/data/split.h"
#include "flipless/nn/bert.h"
#include "flipless/train/features.h"
#include "flipless/train/saved_model.h"

namespace flipless::train {

namespace fs = std::filesystem;

ModelSpace::ModelSpace(const ModelSpec& spec, std::vector<SpaceSplit> splits, std::int64_t num_labels, const fs::path& feature_cache,
                       torch::Device device, Precision precision, const FeatureProgress& progress)
    : spec_(spec), splits_(std::move(splits)), num_labels_(num_labels), device_(device), precision_(precision) {
  check_precision(device_, precision_);
  const auto base = nn::BertConfig::from_json_file(spec_.model_dir / "config.json");
  if (spec_.layers > base.num_hidden_layers) {
    throw ConfigError(fmt::format("model {}: asked for {} layers, it has {}", spec_.name, spec_.layers, base.num_hidden_layers));
  }
  checkpoint_layers_ = base.num_hidden_layers;
  dim_ = base.hidden_size;
  max_length_ = spec_.max_length > 0 ? spec_.max_length : static_cast<std::size_t>(std::min<std::int64_t>(128, base.max_sequence_length()));
  if (spec_.frozen) {
    const FeatureExtractor extractor(FeatureSpec{spec_.model_dir, spec_.layers, spec_.pooling, max_length_, spec_.feature_precision}, device_);
    for (const auto& s : splits_) {
      bool hit = false;
      features_[s.name] = cached_features(
          extractor, *s.data, feature_cache,
          [&](std::int64_t done, std::int64_t total) {
            if (progress) progress(s.name, done, total, "");
          },
          &hit);
      const auto n = static_cast<std::int64_t>(s.data->size());
      if (progress) progress(s.name, n, n, hit ? "cached" : "computed");
    }
    dim_ = extractor.dim();
  } else {
    tokenizer_.emplace(text::WordPieceTokenizer::from_checkpoint_dir(spec_.model_dir));
  }
}

ModelSpace::~ModelSpace() = default;

const data::Dataset& ModelSpace::split(const std::string& name) const {
  for (const auto& s : splits_) {
    if (s.name == name) return *s.data;
  }
  throw ConfigError(fmt::format("no split '{}' in this model space", name));
}

std::unique_ptr<InputSource> ModelSpace::source(const std::string& name, const std::vector<std::int64_t>* rows) const {
  const auto& ds = split(name);
  if (spec_.frozen) {
    auto f = features_.at(name);
    auto y = label_tensor(ds);
    if (rows) {
      const auto idx = torch::tensor(*rows, torch::kInt64);
      f = f.index_select(0, idx);
      y = y.index_select(0, idx);
    }
    return std::make_unique<FeatureSource>(f, y);
  }
  if (!rows) return std::make_unique<TokenSource>(*tokenizer_, ds, max_length_);
  return std::make_unique<TokenSource>(*tokenizer_, data::rows_of(ds, *rows), max_length_);
}

std::shared_ptr<nn::ClassifierModule> ModelSpace::make(std::uint64_t seed) const {
  torch::manual_seed(seed);
  std::shared_ptr<nn::ClassifierModule> model;
  if (spec_.frozen) {
    model = std::make_shared<nn::FeatureClassifier>(dim_, num_labels_, spec_.head);
  } else {
    model = std::make_shared<nn::EncoderClassifier>(nn::load_encoder(spec_.model_dir, spec_.layers), num_labels_, spec_.head);
  }
  model->to(device_);
  return model;
}

Predictions ModelSpace::predict(nn::ClassifierModule& model, const InputSource& source) const {
  return train::predict(model, source, eval_batch(), {}, precision_);
}

Predictions ModelSpace::predict(nn::ClassifierModule& model, CompatibilityStrategy& strategy, const InputSource& source,
                                const torch::Tensor& old_logits) const {
  return predict_with_strategy(model, strategy, source, old_logits, eval_batch(), precision_);
}

TrainConfig ModelSpace::train_config(TrainConfig training, std::uint64_t seed) const {
  training.seed = seed;
  training.eval_batch_size = eval_batch();
  training.device = device_;
  training.precision = precision_;
  return training;
}

nlohmann::json ModelSpace::card() const {
  return {{"kind", spec_.frozen ? "frozen-head" : "fine-tuned"},
          {"base_model", fs::absolute(spec_.model_dir).string()},
          {"layers", spec_.layers > 0 ? spec_.layers : checkpoint_layers_},
          {"pooling", spec_.pooling},
          {"max_length", max_length_},
          {"pooler", !spec_.frozen && nn::checkpoint_has_pooler(spec_.model_dir)},
          {"head", {{"kind", spec_.head.kind}, {"hidden", spec_.head.hidden}, {"dropout", spec_.head.dropout}}},
          {"precision", to_string(precision_)}};
}

void ModelSpace::save(const fs::path& dir, nn::ClassifierModule& model, const nlohmann::json& card) const {
  if (!spec_.frozen) {
    fs::create_directories(dir / "encoder");
    for (const char* f : {"config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      if (fs::exists(spec_.model_dir / f)) fs::copy_file(spec_.model_dir / f, dir / "encoder" / f, fs::copy_options::overwrite_existing);
    }
  }
  save_torch_classifier(dir, model, card);
}

}  // namespace flipless::train
