#include "flipless/nn/bert.h"

#include <torch/torch.h>

#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/tensor_io.h"

namespace flipless::nn {

namespace {

torch::Tensor activation(const torch::Tensor& x, const std::string& act) {
  if (act == "gelu") return torch::gelu(x);
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  return torch::relu(x);
}

// A float tensor (F32, F16 or BF16) of the checkpoint as float32.
torch::Tensor to_tensor(const io::SafetensorsFile& file, const io::TensorInfo& info) {
  if (info.dtype != io::DType::kF32 && info.dtype != io::DType::kF16 && info.dtype != io::DType::kBF16) {
    throw ModelError(fmt::format("{}: tensor '{}' has dtype {}, expected a float type", file.source(), info.name,
                                 io::dtype_name(info.dtype)));
  }
  return read_tensor(file, info.name).to(torch::kFloat32);
}

}  // namespace

BertConfig BertConfig::from_json_file(const std::filesystem::path& path) {
  nlohmann::json j;
  try {
    const auto file = core::InputFile::open(path);
    j = nlohmann::json::parse(file.bytes());
  } catch (const IoError& e) {
    throw ModelError(e.what());
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
  BertConfig c;
  try {
    c.model_type = j.value("model_type", c.model_type);
    c.vocab_size = j.at("vocab_size").get<std::int64_t>();
    c.hidden_size = j.at("hidden_size").get<std::int64_t>();
    c.embedding_size = j.value("embedding_size", std::int64_t{0});
    c.num_hidden_layers = j.at("num_hidden_layers").get<std::int64_t>();
    c.num_attention_heads = j.at("num_attention_heads").get<std::int64_t>();
    c.intermediate_size = j.at("intermediate_size").get<std::int64_t>();
    c.hidden_act = j.value("hidden_act", c.hidden_act);
    c.max_position_embeddings = j.value("max_position_embeddings", c.max_position_embeddings);
    c.type_vocab_size = j.value("type_vocab_size", c.type_vocab_size);
    c.layer_norm_eps = j.value("layer_norm_eps", c.layer_norm_eps);
    c.hidden_dropout_prob = j.value("hidden_dropout_prob", c.hidden_dropout_prob);
    c.attention_probs_dropout_prob = j.value("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
    c.pad_token_id = j.value("pad_token_id", c.pad_token_id);
    c.initializer_range = j.value("initializer_range", c.initializer_range);
    if (j.contains("position_embedding_type") && j["position_embedding_type"] != "absolute") {
      throw ModelError(fmt::format("{}: field 'position_embedding_type': only \"absolute\" is supported, not {}", path.string(),
                                   j["position_embedding_type"].dump()));
    }
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(fmt::format("{}: {}", path.string(), e.what()));
  }
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw ModelError(fmt::format("{}: {}", path.string(), e.what()));
  }
  return c;
}

void BertConfig::validate() const {
  if (model_type != "bert" && model_type != "electra" && model_type != "roberta") {
    throw ConfigError(fmt::format("field 'model_type': '{}' is not a BERT-family encoder (bert, electra, roberta)", model_type));
  }
  if (hidden_size <= 0 || num_attention_heads <= 0 || hidden_size % num_attention_heads != 0) {
    throw ConfigError(fmt::format("field 'hidden_size': {} is not a positive multiple of num_attention_heads {}", hidden_size,
                                  num_attention_heads));
  }
  if (num_hidden_layers <= 0 || vocab_size <= 0 || intermediate_size <= 0 || max_position_embeddings <= 0 || type_vocab_size <= 0) {
    throw ConfigError("fields 'num_hidden_layers', 'vocab_size', 'intermediate_size', 'max_position_embeddings' and "
                      "'type_vocab_size' must be positive");
  }
  if (hidden_act != "gelu" && hidden_act != "gelu_new" && hidden_act != "gelu_pytorch_tanh" && hidden_act != "relu") {
    throw ConfigError(fmt::format("field 'hidden_act': '{}' is not supported (gelu, gelu_new, relu)", hidden_act));
  }
}

BertLayerImpl::BertLayerImpl(const BertConfig& c)
    : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads), act_(c.hidden_act) {
  const auto h = c.hidden_size;
  query_ = register_module("query", torch::nn::Linear(h, h));
  key_ = register_module("key", torch::nn::Linear(h, h));
  value_ = register_module("value", torch::nn::Linear(h, h));
  attn_out_ = register_module("attn_out", torch::nn::Linear(h, h));
  attn_norm_ = register_module("attn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(c.layer_norm_eps)));
  inter_ = register_module("inter", torch::nn::Linear(h, c.intermediate_size));
  out_ = register_module("out", torch::nn::Linear(c.intermediate_size, h));
  out_norm_ = register_module("out_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(c.layer_norm_eps)));
  attn_drop_ = register_module("attn_drop", torch::nn::Dropout(c.attention_probs_dropout_prob));
  hidden_drop_ = register_module("hidden_drop", torch::nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& additive_mask) {
  const auto b = x.size(0), s = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({b, s, heads_, head_dim_}).transpose(1, 2); };  // (b, heads, s, d)
  const auto q = split(query_(x)), k = split(key_(x)), v = split(value_(x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim_));  // (b, heads, s, s)
  scores = scores + additive_mask;
  const auto probs = attn_drop_(torch::softmax(scores, -1));
  const auto context = torch::matmul(probs, v).transpose(1, 2).reshape({b, s, heads_ * head_dim_});  // (b, s, hidden)
  const auto attended = attn_norm_(hidden_drop_(attn_out_(context)) + x);
  const auto inner = activation(inter_(attended), act_);  // (b, s, intermediate)
  return out_norm_(hidden_drop_(out_(inner)) + attended);
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& config, bool with_pooler) : config_(config) {
  config_.validate();
  const auto e = config_.embedding_dim(), h = config_.hidden_size;
  word_ = register_module("word", torch::nn::Embedding(config_.vocab_size, e));
  position_ = register_module("position", torch::nn::Embedding(config_.max_position_embeddings, e));
  token_type_ = register_module("token_type", torch::nn::Embedding(config_.type_vocab_size, e));
  emb_norm_ = register_module("emb_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({e}).eps(config_.layer_norm_eps)));
  emb_drop_ = register_module("emb_drop", torch::nn::Dropout(config_.hidden_dropout_prob));
  if (e != h) emb_project_ = register_module("emb_project", torch::nn::Linear(e, h));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) layers_->push_back(BertLayer(config_));
  if (with_pooler) pooler_ = register_module("pooler", torch::nn::Linear(h, h));
}

EncoderOutput BertEncoderImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                                       const torch::Tensor& attention_mask) {
  const auto seq = input_ids.size(1);
  if (seq > config_.max_sequence_length()) {
    throw InputError(fmt::format("sequence length {} exceeds the model's {} positions", seq, config_.max_position_embeddings));
  }
  torch::Tensor positions;
  if (config_.model_type == "roberta") {
    // RoBERTa counts positions from pad_token_id + 1 over real tokens only.
    const auto mask = input_ids.ne(config_.pad_token_id).to(torch::kInt64);
    positions = torch::cumsum(mask, 1) * mask + config_.pad_token_id;  // (batch, seq)
  } else {
    positions = torch::arange(seq, input_ids.options()).unsqueeze(0).expand_as(input_ids);  // (batch, seq)
  }
  auto x = word_(input_ids) + position_(positions) + token_type_(token_type_ids);  // (batch, seq, emb)
  x = emb_drop_(emb_norm_(x));
  if (!emb_project_.is_empty()) x = emb_project_(x);
  // 0 where attended, the most negative float where padded: (batch, 1, 1, seq).
  const auto additive = (1.0 - attention_mask.to(x.dtype()).unsqueeze(1).unsqueeze(2)) * std::numeric_limits<float>::lowest();
  for (const auto& layer : *layers_) x = layer->as<BertLayer>()->forward(x, additive);
  const auto cls = x.select(1, 0);  // (batch, hidden)
  return {x, pooler_.is_empty() ? cls : torch::tanh(pooler_(cls))};
}

void BertEncoderImpl::load_safetensors(const std::filesystem::path& path) {
  const auto file = io::SafetensorsFile::open(path);
  std::string prefix;
  for (const char* p : {"", "bert.", "electra.", "roberta."}) {
    if (file.find(std::string(p) + "embeddings.word_embeddings.weight")) {
      prefix = p;
      break;
    }
    if (std::string(p) == "roberta.") {
      throw ModelError(fmt::format("{}: no 'embeddings.word_embeddings.weight' (with or without a bert./electra./roberta. prefix): "
                                   "not a BERT-family checkpoint", path.string()));
    }
  }
  std::vector<std::pair<std::string, torch::Tensor>> targets = {
      {"embeddings.word_embeddings.weight", word_->weight},
      {"embeddings.position_embeddings.weight", position_->weight},
      {"embeddings.token_type_embeddings.weight", token_type_->weight},
      {"embeddings.LayerNorm.weight", emb_norm_->weight},
      {"embeddings.LayerNorm.bias", emb_norm_->bias},
  };
  if (!emb_project_.is_empty()) {
    targets.emplace_back("embeddings_project.weight", emb_project_->weight);
    targets.emplace_back("embeddings_project.bias", emb_project_->bias);
  }
  for (std::size_t i = 0; i < layers_->size(); ++i) {
    auto layer = layers_[i];
    const auto named = layer->named_parameters();
    const std::string l = fmt::format("encoder.layer.{}.", i);
    const std::pair<const char*, const char*> names[] = {
        {"query", "attention.self.query"},   {"key", "attention.self.key"},          {"value", "attention.self.value"},
        {"attn_out", "attention.output.dense"}, {"attn_norm", "attention.output.LayerNorm"}, {"inter", "intermediate.dense"},
        {"out", "output.dense"},             {"out_norm", "output.LayerNorm"}};
    for (const auto& [ours, theirs] : names) {
      targets.emplace_back(l + theirs + ".weight", named[std::string(ours) + ".weight"]);
      targets.emplace_back(l + theirs + ".bias", named[std::string(ours) + ".bias"]);
    }
  }
  if (!pooler_.is_empty()) {
    targets.emplace_back("pooler.dense.weight", pooler_->weight);
    targets.emplace_back("pooler.dense.bias", pooler_->bias);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : targets) {
    const io::TensorInfo* info = file.find(prefix + name);
    if (info == nullptr) throw ModelError(fmt::format("{}: missing tensor '{}{}'", path.string(), prefix, name));
    const auto value = to_tensor(file, *info);
    if (value.sizes() != param.sizes()) {
      throw ModelError(fmt::format("{}: tensor '{}{}' has shape {} but config.json implies {}", path.string(), prefix, name,
                                   fmt::format("{}", fmt::join(value.sizes(), "x")), fmt::format("{}", fmt::join(param.sizes(), "x"))));
    }
    param.copy_(value);
  }
}

bool checkpoint_has_pooler(const std::filesystem::path& dir) {
  const auto file = io::SafetensorsFile::open(dir / "model.safetensors");
  for (const char* p : {"", "bert.", "electra.", "roberta."}) {
    if (file.find(std::string(p) + "pooler.dense.weight")) return true;
  }
  return false;
}

BertEncoder load_encoder(const std::filesystem::path& dir, std::int64_t num_layers) {
  if (!std::filesystem::is_directory(dir)) throw ModelError(fmt::format("{}: not a checkpoint folder", dir.string()));
  const auto weights = dir / "model.safetensors";
  if (!std::filesystem::exists(weights)) {
    if (std::filesystem::exists(dir / "pytorch_model.bin")) {
      throw ModelError(fmt::format("{}: only pytorch_model.bin (a pickled checkpoint) is there; flipless reads model.safetensors "
                                   "only, since unpickling runs arbitrary code. Convert it once with Python: "
                                   "transformers' save_pretrained(..., safe_serialization=True)", dir.string()));
    }
    throw ModelError(fmt::format("{}: no model.safetensors", dir.string()));
  }
  BertConfig config = BertConfig::from_json_file(dir / "config.json");
  if (num_layers > 0) {
    if (num_layers > config.num_hidden_layers) {
      throw ModelError(fmt::format("{}: asked for {} layers, the model has {}", dir.string(), num_layers, config.num_hidden_layers));
    }
    config.num_hidden_layers = num_layers;
  }
  BertEncoder encoder(config, checkpoint_has_pooler(dir));
  encoder->load_safetensors(weights);
  return encoder;
}

}  // namespace flipless::nn
