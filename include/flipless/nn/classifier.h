#pragma once
// Trainable classifiers in libtorch: a head on precomputed features (frozen encoder), or a
// fine-tuned BERT-family encoder with a head on its pooled embedding (the paper's setting).
// Both give logits and the pooled embedding the head reads, which is Gated Fusion's gate
// input.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flipless/nn/bert.h"

namespace flipless::nn {

// A batch of model inputs: `features` (batch, dim) for heads on frozen features, or the three
// token tensors (batch, seq) for encoders.
struct ModelInputs {
  torch::Tensor features;
  torch::Tensor input_ids;
  torch::Tensor token_type_ids;
  torch::Tensor attention_mask;
};

struct ModelOutput {
  torch::Tensor logits;     // (batch, num_labels)
  torch::Tensor embedding;  // (batch, dim): what the head reads
};

struct HeadConfig {
  // linear; mlp (Linear, ReLU, Dropout, Linear); or hf, fine-tuned encoders only: the head of the
  // encoder type's Hugging Face *ForSequenceClassification (SequenceClassificationHead).
  std::string kind = "linear";
  std::int64_t hidden = 256;    // mlp hidden width
  double dropout = 0.1;         // before the head (and inside the mlp)
  void validate() const;
};

class ClassificationHeadImpl : public torch::nn::Module {
 public:
  ClassificationHeadImpl(std::int64_t in_dim, std::int64_t num_labels, const HeadConfig& config);
  torch::Tensor forward(const torch::Tensor& embedding);  // (batch, in_dim) -> (batch, num_labels)

 private:
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Sequential layers_{nullptr};
};
TORCH_MODULE(ClassificationHead);

// Hugging Face's *ForSequenceClassification head for an encoder's model type, initialised as
// transformers initialises it (weights N(0, initializer_range), biases 0):
//   bert:            dropout, Linear(h -> k) on the pooler output (the [CLS] state when the
//                    checkpoint has no pooler)
//   electra:         dropout, Linear(h -> h), GELU, dropout, Linear(h -> k) on the [CLS] state
//   roberta:         the same with tanh
// Parameters: dropout, dense (electra, roberta), out_proj.
class SequenceClassificationHeadImpl : public torch::nn::Module {
 public:
  SequenceClassificationHeadImpl(const BertConfig& config, std::int64_t num_labels, double dropout);
  torch::Tensor forward(const torch::Tensor& embedding);  // (batch, h) -> (batch, num_labels)
  // Whether the head reads the [CLS] state (electra, roberta) rather than the pooled output.
  bool reads_cls() const { return !dense_.is_empty(); }

 private:
  std::string model_type_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear dense_{nullptr}, out_proj_{nullptr};
};
TORCH_MODULE(SequenceClassificationHead);

// The interface the training loop drives.
class ClassifierModule : public torch::nn::Module {
 public:
  virtual ModelOutput forward(const ModelInputs& inputs) = 0;
  virtual std::int64_t num_labels() const = 0;
};

// A head on precomputed features; the embedding is the feature vector itself.
class FeatureClassifier : public ClassifierModule {
 public:
  FeatureClassifier(std::int64_t feature_dim, std::int64_t num_labels, const HeadConfig& head);
  ModelOutput forward(const ModelInputs& inputs) override;
  std::int64_t num_labels() const override { return num_labels_; }

 private:
  std::int64_t num_labels_;
  ClassificationHead head_{nullptr};
};

// A BERT-family encoder fine-tuned with a head: `hf` (what the paper trained: the model type's
// Hugging Face head), or a linear / mlp head on the pooled output. The embedding is what the
// head reads (Gated Fusion's gate input).
class EncoderClassifier : public ClassifierModule {
 public:
  EncoderClassifier(BertEncoder encoder, std::int64_t num_labels, const HeadConfig& head);
  ModelOutput forward(const ModelInputs& inputs) override;
  std::int64_t num_labels() const override { return num_labels_; }
  BertEncoder& encoder() { return encoder_; }

 private:
  std::int64_t num_labels_;
  BertEncoder encoder_{nullptr};
  ClassificationHead head_{nullptr};
  SequenceClassificationHead hf_head_{nullptr};
};

// A Hugging Face *ForSequenceClassification checkpoint as it was fine-tuned: its encoder and
// its own head, so a deployed model can be run (and measured, and served from) as it is.
// BERT: dropout and `classifier` on the pooler output; ELECTRA: dropout, `classifier.dense`,
// GELU, dropout, `classifier.out_proj` on the [CLS] state; RoBERTa: the same with tanh. The
// embedding is what the head reads (the pooler output, or the [CLS] state).
class PretrainedClassifier : public ClassifierModule {
 public:
  // Throws ModelError naming the folder and the missing or mis-shaped tensor.
  explicit PretrainedClassifier(const std::filesystem::path& dir);
  ModelOutput forward(const ModelInputs& inputs) override;
  std::int64_t num_labels() const override { return num_labels_; }
  // From config.json's id2label in id order; the default names LABEL_k are read as "k".
  const std::vector<std::string>& label_names() const { return label_names_; }
  BertEncoder& encoder() { return encoder_; }

 private:
  std::int64_t num_labels_ = 0;
  std::vector<std::string> label_names_;
  bool dense_head_ = false;  // ELECTRA / RoBERTa: dense + activation + out_proj
  BertEncoder encoder_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear dense_{nullptr}, out_{nullptr};
};

// A PretrainedClassifier's label names, from config.json and the head's shape alone (no weights
// read). Throws ModelError.
std::vector<std::string> sequence_classification_labels(const std::filesystem::path& dir);

// Whether `dir/model.safetensors` holds a sequence-classification head ("classifier.weight" or
// "classifier.out_proj.weight").
bool is_sequence_classification_checkpoint(const std::filesystem::path& dir);

}  // namespace flipless::nn
