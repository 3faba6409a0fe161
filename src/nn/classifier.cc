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
  if (kind != "linear" && kind != "mlp" && kind != "hf") throw ConfigError(fmt::format("head '{}': expected linear, mlp or hf", kind));
  if (hidden <= 0) throw ConfigError(fmt::format("head hidden width must be positive, got {}", hidden));
  if (!(dropout >= 0 && dropout < 1)) throw ConfigError(fmt::format("head dropout must be in [0, 1), got {}", dropout));
}

ClassificationHeadImpl::ClassificationHeadImpl(std::int64_t in_dim, std::int64_t num_labels, const HeadConfig& config) {
  config.validate();
  if (config.kind == "hf") throw ConfigError("head 'hf' (Hugging Face's classification head) is for fine-tuned encoders; use linear or mlp");
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

SequenceClassificationHeadImpl::SequenceClassificationHeadImpl(const BertConfig& config, std::int64_t num_labels, double dropout)
    : model_type_(config.model_type) {
  if (num_labels < 2) throw ConfigError(fmt::format("a classifier needs at least 2 labels, got {}", num_labels));
  if (!(dropout >= 0 && dropout < 1)) throw ConfigError(fmt::format("head dropout must be in [0, 1), got {}", dropout));
  const auto h = config.hidden_size;
  dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
  if (model_type_ != "bert") dense_ = register_module("dense", torch::nn::Linear(h, h));
  out_proj_ = register_module("out_proj", torch::nn::Linear(h, num_labels));
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.key().find("bias") != std::string::npos) {
      p.value().zero_();
    } else {
      p.value().normal_(0.0, config.initializer_range);
    }
  }
}

torch::Tensor SequenceClassificationHeadImpl::forward(const torch::Tensor& embedding) {
  if (dense_.is_empty()) return out_proj_(dropout_(embedding));
  auto x = dense_(dropout_(embedding));
  x = model_type_ == "roberta" ? torch::tanh(x) : torch::gelu(x);  // transformers: tanh (RoBERTa), GELU (ELECTRA)
  return out_proj_(dropout_(x));
}

EncoderClassifier::EncoderClassifier(BertEncoder encoder, std::int64_t num_labels, const HeadConfig& head)
    : num_labels_(num_labels) {
  encoder_ = register_module("encoder", std::move(encoder));
  if (head.kind == "hf") {
    hf_head_ = register_module("head", SequenceClassificationHead(encoder_->config(), num_labels, head.dropout));
  } else {
    head_ = register_module("head", ClassificationHead(encoder_->config().hidden_size, num_labels, head));
  }
}

ModelOutput EncoderClassifier::forward(const ModelInputs& inputs) {
  const auto out = encoder_->forward(inputs.input_ids, inputs.token_type_ids, inputs.attention_mask);
  if (hf_head_.is_empty()) return {head_(out.pooled), out.pooled};
  const auto embedding = hf_head_->reads_cls() ? out.last_hidden.select(1, 0) : out.pooled;
  return {hf_head_(embedding), embedding};
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
// The head's output layer ("classifier.out_proj.weight" after ELECTRA's and RoBERTa's dense
// layer, "classifier.weight" for BERT's), checked for shape. Throws ModelError.
const io::TensorInfo& head_output(const io::SafetensorsFile& file, const std::filesystem::path& dir) {
  const auto* out = file.find("classifier.out_proj.weight");
  if (out == nullptr) out = file.find("classifier.weight");
  if (out == nullptr) {
    throw ModelError(fmt::format("{}: no classification head in model.safetensors ('classifier.weight' or 'classifier.out_proj.weight'): "
                                 "not a *ForSequenceClassification checkpoint", dir.string()));
  }
  if (out->shape.size() != 2 || out->shape[0] < 2) {
    throw ModelError(fmt::format("{}: the classifier's weight '{}' has shape [{}], expected [num_labels >= 2, hidden]", dir.string(),
                                 out->name, fmt::join(out->shape, ", ")));
  }
  return *out;
}

nlohmann::json read_config_json(const std::filesystem::path& dir) {
  try {
    return nlohmann::json::parse(core::InputFile::open(dir / "config.json").bytes());
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(fmt::format("{}: invalid JSON: {}", (dir / "config.json").string(), e.what()));
  }
}

// Labels by id from config.json's id2label; HF's default names LABEL_k mean "label k".
std::vector<std::string> labels_of(const nlohmann::json& config, std::int64_t num_labels, const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (std::int64_t k = 0; k < num_labels; ++k) names.push_back(std::to_string(k));
  if (!config.contains("id2label") || !config["id2label"].is_object()) return names;
  for (const auto& [key, value] : config["id2label"].items()) {
    std::size_t id = 0;
    try {
      id = std::stoul(key);
    } catch (const std::exception&) {
      throw ModelError(fmt::format("{}: field 'id2label': key '{}' is not a label id", (dir / "config.json").string(), key));
    }
    if (id >= names.size() || !value.is_string()) {
      throw ModelError(fmt::format("{}: field 'id2label': entry '{}' does not name one of the head's {} labels",
                                   (dir / "config.json").string(), key, num_labels));
    }
    const auto name = value.get<std::string>();
    names[id] = name.rfind("LABEL_", 0) == 0 && name.substr(6) == std::to_string(id) ? std::to_string(id) : name;
  }
  return names;
}
}  // namespace

std::vector<std::string> sequence_classification_labels(const std::filesystem::path& dir) {
  const auto file = io::SafetensorsFile::open(dir / "model.safetensors");
  return labels_of(read_config_json(dir), head_output(file, dir).shape[0], dir);
}

PretrainedClassifier::PretrainedClassifier(const std::filesystem::path& dir) {
  const auto file = io::SafetensorsFile::open(dir / "model.safetensors");
  const auto& out_weight = head_output(file, dir);
  encoder_ = register_module("encoder", load_encoder(dir));
  const auto& config = encoder_->config();
  dense_head_ = out_weight.name == "classifier.out_proj.weight";
  num_labels_ = out_weight.shape[0];
  const auto json = read_config_json(dir);
  label_names_ = labels_of(json, num_labels_, dir);
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
