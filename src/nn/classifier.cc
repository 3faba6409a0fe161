#include "flipless/nn/classifier.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "flipless/core/file.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/tensor_io.h"

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

bool is_sequence_classification_checkpoint(const std::filesystem::path& dir) {
  const auto weights = dir / "model.safetensors";
  if (!std::filesystem::exists(weights)) return false;
  const auto file = io::SafetensorsFile::open(weights);
  return file.find("classifier.weight") != nullptr || file.find("classifier.out_proj.weight") != nullptr;
}

namespace {
// Copies a checkpoint tensor into a parameter of the same shape.
void assign(const io::SafetensorsFile& file, const std::string& name, torch::Tensor& param) {
  const auto value = read_tensor(file, name);
  if (value.sizes() != param.sizes()) {
    throw ModelError(fmt::format("{}: tensor '{}' has shape [{}], expected [{}]", file.source(), name, fmt::join(value.sizes(), ", "),
                                 fmt::join(param.sizes(), ", ")));
  }
  torch::NoGradGuard no_grad;
  param.copy_(value);
}
}  // namespace

PretrainedClassifier::PretrainedClassifier(const std::filesystem::path& dir) {
  if (!is_sequence_classification_checkpoint(dir)) {
    throw ModelError(fmt::format("{}: no classification head in model.safetensors ('classifier.weight' or 'classifier.out_proj.weight'): "
                                 "not a *ForSequenceClassification checkpoint", dir.string()));
  }
  encoder_ = register_module("encoder", load_encoder(dir));
  const auto& config = encoder_->config();
  const auto file = io::SafetensorsFile::open(dir / "model.safetensors");
  dense_head_ = file.find("classifier.out_proj.weight") != nullptr;
  const auto out_weight = read_tensor(file, dense_head_ ? "classifier.out_proj.weight" : "classifier.weight");
  if (out_weight.dim() != 2 || out_weight.size(1) != config.hidden_size) {
    throw ModelError(fmt::format("{}: the classifier's weight has shape [{}], expected [num_labels, {}]", dir.string(),
                                 fmt::join(out_weight.sizes(), ", "), config.hidden_size));
  }
  num_labels_ = out_weight.size(0);
  if (num_labels_ < 2) throw ModelError(fmt::format("{}: a classifier needs at least 2 labels, the head has {}", dir.string(), num_labels_));
  // Labels by id from config.json; HF's default names LABEL_k mean "label k".
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(core::InputFile::open(dir / "config.json").bytes());
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(fmt::format("{}: invalid JSON: {}", (dir / "config.json").string(), e.what()));
  }
  for (std::int64_t k = 0; k < num_labels_; ++k) label_names_.push_back(std::to_string(k));
  if (json.contains("id2label") && json["id2label"].is_object()) {
    for (const auto& [key, value] : json["id2label"].items()) {
      std::size_t id = 0;
      try {
        id = std::stoul(key);
      } catch (const std::exception&) {
        throw ModelError(fmt::format("{}: field 'id2label': key '{}' is not a label id", (dir / "config.json").string(), key));
      }
      if (id >= label_names_.size() || !value.is_string()) {
        throw ModelError(fmt::format("{}: field 'id2label': entry '{}' does not name one of the head's {} labels",
                                     (dir / "config.json").string(), key, num_labels_));
      }
      const auto name = value.get<std::string>();
      label_names_[id] = name.rfind("LABEL_", 0) == 0 && name.substr(6) == std::to_string(id) ? std::to_string(id) : name;
    }
  }
  const double drop = json.contains("classifier_dropout") && json["classifier_dropout"].is_number() ? json["classifier_dropout"].get<double>()
                                                                                                      : config.hidden_dropout_prob;
  dropout_ = register_module("dropout", torch::nn::Dropout(drop));
  const auto h = config.hidden_size;
  if (dense_head_) {
    dense_ = register_module("dense", torch::nn::Linear(h, h));
    assign(file, "classifier.dense.weight", dense_->weight);
    assign(file, "classifier.dense.bias", dense_->bias);
  }
  out_ = register_module("out", torch::nn::Linear(h, num_labels_));
  assign(file, dense_head_ ? "classifier.out_proj.weight" : "classifier.weight", out_->weight);
  assign(file, dense_head_ ? "classifier.out_proj.bias" : "classifier.bias", out_->bias);
}

ModelOutput PretrainedClassifier::forward(const ModelInputs& inputs) {
  const auto out = encoder_->forward(inputs.input_ids, inputs.token_type_ids, inputs.attention_mask);
  if (!dense_head_) return {out_(dropout_(out.pooled)), out.pooled};  // BERT: the pooler output
  const auto cls = out.last_hidden.select(1, 0);
  auto x = dense_(dropout_(cls));
  x = encoder_->config().model_type == "roberta" ? torch::tanh(x) : torch::gelu(x);  // transformers' heads: tanh / GELU
  return {out_(dropout_(x)), cls};
}

}  // namespace flipless::nn
