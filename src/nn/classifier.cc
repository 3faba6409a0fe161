#include "flipless/nn/classifier.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "flipless/core/error.h"

namespace flipless::nn {

void HeadConfig::validate() const {
  if (kind != "linear" && kind != "mlp") throw ConfigError(fmt::format("head '{}': expected linear or mlp", kind));
  if (hidden <= 0) throw ConfigError(fmt::format("head hidden width must be positive, got {}", hidden));
  if (!(dropout >= 0 && dropout < 1)) throw ConfigError(fmt::format("head dropout must be in [0, 1), got {}", dropout));
}

ClassificationHeadImpl::ClassificationHeadImpl(std::int64_t in_dim, std::int64_t num_labels, const HeadConfig& config) {
  config.validate();
  if (num_labels < 2) throw ConfigError(fmt::format("a classifier needs at least 2 labels, got {}", num_labels));
  dropout_ = register_module("dropout", torch::nn::Dropout(config.dropout));
  layers_ = torch::nn::Sequential();
  if (config.kind == "mlp") {
    layers_->push_back(torch::nn::Linear(in_dim, config.hidden));
    layers_->push_back(torch::nn::Functional(torch::relu));
    layers_->push_back(torch::nn::Dropout(config.dropout));
    layers_->push_back(torch::nn::Linear(config.hidden, num_labels));
  } else {
    layers_->push_back(torch::nn::Linear(in_dim, num_labels));
  }
  register_module("layers", layers_);
}

torch::Tensor ClassificationHeadImpl::forward(const torch::Tensor& embedding) { return layers_->forward(dropout_(embedding)); }

FeatureClassifier::FeatureClassifier(std::int64_t feature_dim, std::int64_t num_labels, const HeadConfig& head)
    : num_labels_(num_labels) {
  head_ = register_module("head", ClassificationHead(feature_dim, num_labels, head));
}

ModelOutput FeatureClassifier::forward(const ModelInputs& inputs) {
  return {head_(inputs.features), inputs.features};
}

EncoderClassifier::EncoderClassifier(BertEncoder encoder, std::int64_t num_labels, const HeadConfig& head)
    : num_labels_(num_labels) {
  encoder_ = register_module("encoder", std::move(encoder));
  head_ = register_module("head", ClassificationHead(encoder_->config().hidden_size, num_labels, head));
}

ModelOutput EncoderClassifier::forward(const ModelInputs& inputs) {
  const auto out = encoder_->forward(inputs.input_ids, inputs.token_type_ids, inputs.attention_mask);
  return {head_(out.pooled), out.pooled};
}

}  // namespace flipless::nn
