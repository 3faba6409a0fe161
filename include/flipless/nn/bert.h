#pragma once
// A BERT-family encoder in libtorch, built from a Hugging Face config.json and loaded from
// model.safetensors with flipless' own reader. Layouts: BERT (with or without pooler),
// ELECTRA discriminators (embedding projection when embedding_size != hidden_size) and
// RoBERTa (padding-aware positions). Pickled pytorch_model.bin checkpoints are refused.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace flipless::nn {

struct BertConfig {
  std::string model_type = "bert";        // bert, electra or roberta
  std::int64_t vocab_size = 30522;
  std::int64_t hidden_size = 768;
  std::int64_t embedding_size = 0;        // 0: hidden_size (ELECTRA may differ)
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";        // gelu (exact), gelu_new (tanh), relu
  std::int64_t max_position_embeddings = 512;
  std::int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::int64_t pad_token_id = 0;
  double initializer_range = 0.02;       // std of transformers' N(0, range) initialisation

  // Reads a Hugging Face config.json; throws ModelError naming the file and field.
  static BertConfig from_json_file(const std::filesystem::path& path);
  // Throws ConfigError on inconsistent values.
  void validate() const;
  std::int64_t embedding_dim() const { return embedding_size > 0 ? embedding_size : hidden_size; }
  // The longest input (in tokens, specials included) the position embeddings cover: RoBERTa
  // counts positions from pad_token_id + 1.
  std::int64_t max_sequence_length() const { return max_position_embeddings - (model_type == "roberta" ? pad_token_id + 1 : 0); }
};

struct EncoderOutput {
  torch::Tensor last_hidden;  // (batch, seq, hidden)
  torch::Tensor pooled;       // (batch, hidden): tanh(pooler([CLS])) for BERT, [CLS] otherwise
};

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& config);
  // x: (batch, seq, hidden); additive_mask: (batch, 1, 1, seq), 0 or a large negative.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& additive_mask);

 private:
  std::int64_t heads_, head_dim_;
  std::string act_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, attn_out_{nullptr}, inter_{nullptr}, out_{nullptr};
  torch::nn::LayerNorm attn_norm_{nullptr}, out_norm_{nullptr};
  torch::nn::Dropout attn_drop_{nullptr}, hidden_drop_{nullptr};
};
TORCH_MODULE(BertLayer);

class BertEncoderImpl : public torch::nn::Module {
 public:
  // `with_pooler`: BERT's pooler (dense + tanh over [CLS]) exists and feeds `pooled`.
  BertEncoderImpl(const BertConfig& config, bool with_pooler);

  // Runs the encoder. input_ids, token_type_ids, attention_mask: (batch, seq) int64.
  EncoderOutput forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const torch::Tensor& attention_mask);

  // Loads weights from a safetensors file, with the checkpoint's prefix ("bert.", "electra.",
  // "roberta." or none) found automatically. Layers beyond config.num_hidden_layers are
  // ignored (a truncated copy of a deeper model). Throws ModelError for a missing tensor or a
  // shape mismatch, naming both.
  void load_safetensors(const std::filesystem::path& path);

  const BertConfig& config() const { return config_; }
  bool has_pooler() const { return !pooler_.is_empty(); }

 private:
  BertConfig config_;
  torch::nn::Embedding word_{nullptr}, position_{nullptr}, token_type_{nullptr};
  torch::nn::LayerNorm emb_norm_{nullptr};
  torch::nn::Dropout emb_drop_{nullptr};
  torch::nn::Linear emb_project_{nullptr}, pooler_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
};
TORCH_MODULE(BertEncoder);

// True when `dir/model.safetensors` has a pooler ("pooler.dense.weight", any prefix).
bool checkpoint_has_pooler(const std::filesystem::path& dir);

// Loads an encoder from a Hugging Face checkpoint folder (config.json + model.safetensors),
// keeping its first `num_layers` layers when num_layers > 0. Throws ModelError for missing
// files, pickled checkpoints and unsupported model types.
BertEncoder load_encoder(const std::filesystem::path& dir, std::int64_t num_layers = 0);

}  // namespace flipless::nn
