#include "flipless/train/saved_model.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <mutex>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/core/json_fields.h"
#include "flipless/io/safetensors.h"
#include "flipless/models/fasttext_classifier.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/features.h"
#include "flipless/train/inputs.h"
#include "flipless/train/trainer.h"

namespace flipless::train {

namespace {

constexpr const char* kFormat = "flipless-classifier";
constexpr int kVersion = 1;

std::map<std::string, torch::Tensor> state_of(nn::ClassifierModule& model) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : model.named_parameters()) state[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) state[b.key()] = b.value();
  return state;
}

void load_state(nn::ClassifierModule& model, const std::filesystem::path& path) {
  const auto file = io::SafetensorsFile::open(path);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : state_of(model)) {
    const auto value = nn::read_tensor(file, name);
    if (value.sizes() != tensor.sizes()) {
      throw ModelError(fmt::format("{}: tensor '{}' has shape {}, the model expects {}", path.string(), name,
                                   fmt::join(value.sizes(), "x"), fmt::join(tensor.sizes(), "x")));
    }
    tensor.copy_(value);
  }
}


data::Dataset as_dataset(std::span<const data::TextExample> examples) {
  data::Dataset ds;
  ds.name = "input";
  ds.examples.assign(examples.begin(), examples.end());
  for (auto& ex : ds.examples) ex.label = 0;  // unused by prediction
  return ds;
}

// A frozen encoder and a head trained on its features.
class FrozenHeadClassifier : public models::Classifier {
 public:
  FrozenHeadClassifier(const std::filesystem::path& dir, const ModelCard& card, torch::Device device, Precision precision)
      : card_(card),
        extractor_(FeatureSpec{card.base_model, card.layers, card.pooling, card.max_length, precision}, device),
        head_(extractor_.dim(), static_cast<std::int64_t>(card.label_names.size()), card.head) {
    load_state(head_, dir / "weights.safetensors");
    head_.to(device);
    head_.eval();
  }
  std::size_t num_labels() const override { return static_cast<std::size_t>(head_.num_labels()); }
  models::ClassifierOutput predict(std::span<const data::TextExample> examples) const override {
    const std::lock_guard lock(mutex_);
    const data::Dataset ds = as_dataset(examples);
    const FeatureSource source(extractor_.extract(ds), label_tensor(ds));
    return as_classifier_output(train::predict(head_, source, 256));
  }
  std::string describe() const override {
    return fmt::format("frozen {} (first {} layers, {} pooling) + {} head, {} labels", card_.base_model, card_.layers, card_.pooling,
                       card_.head.kind, num_labels());
  }

 private:
  ModelCard card_;
  FeatureExtractor extractor_;
  mutable nn::FeatureClassifier head_;
  mutable std::mutex mutex_;
};

// Tokenises the examples and runs a model on token inputs over them, in batches of 64.
models::ClassifierOutput predict_texts(nn::ClassifierModule& model, const text::WordPieceTokenizer& tokenizer,
                                       std::span<const data::TextExample> examples, std::size_t max_length, Precision precision) {
  const data::Dataset ds = as_dataset(examples);
  const TokenSource source(tokenizer, ds, max_length);
  return as_classifier_output(train::predict(model, source, 64, {}, precision));
}

// A fine-tuned encoder with its head.
class FineTunedClassifier : public models::Classifier {
 public:
  FineTunedClassifier(const std::filesystem::path& dir, const ModelCard& card, torch::Device device, Precision precision)
      : card_(card),
        precision_(precision),
        tokenizer_(text::WordPieceTokenizer::from_checkpoint_dir(dir / "encoder")),
        model_(nn::BertEncoder(encoder_config(dir, card), card.pooler), static_cast<std::int64_t>(card.label_names.size()), card.head) {
    load_state(model_, dir / "weights.safetensors");
    model_.to(device);
    model_.eval();
    store_linear_weights_for_autocast(model_, precision);  // cast once, not on every call
  }
  std::size_t num_labels() const override { return static_cast<std::size_t>(model_.num_labels()); }
  models::ClassifierOutput predict(std::span<const data::TextExample> examples) const override {
    const std::lock_guard lock(mutex_);
    return predict_texts(model_, tokenizer_, examples, card_.max_length, precision_);
  }
  std::string describe() const override {
    return fmt::format("fine-tuned {} ({} layers) + {} head, {} labels", card_.base_model, card_.layers, card_.head.kind, num_labels());
  }

 private:
  static nn::BertConfig encoder_config(const std::filesystem::path& dir, const ModelCard& card) {
    auto config = nn::BertConfig::from_json_file(dir / "encoder/config.json");
    config.num_hidden_layers = card.layers;
    return config;
  }
  ModelCard card_;
  Precision precision_;
  text::WordPieceTokenizer tokenizer_;
  mutable nn::EncoderClassifier model_;
  mutable std::mutex mutex_;
};

// A Hugging Face *ForSequenceClassification checkpoint with its own head.
class PretrainedHeadClassifier : public models::Classifier {
 public:
  PretrainedHeadClassifier(const std::filesystem::path& dir, torch::Device device, Precision precision)
      : dir_(dir), precision_(precision), tokenizer_(text::WordPieceTokenizer::from_checkpoint_dir(dir)), model_(dir) {
    model_.to(device);
    model_.eval();
    store_linear_weights_for_autocast(model_, precision);  // cast once, not on every call
  }
  std::size_t num_labels() const override { return static_cast<std::size_t>(model_.num_labels()); }
  models::ClassifierOutput predict(std::span<const data::TextExample> examples) const override {
    const std::lock_guard lock(mutex_);
    return predict_texts(model_, tokenizer_, examples, kMaxLength, precision_);
  }
  std::string describe() const override {
    return fmt::format("{} {} with its own classification head, {} labels", model_.encoder()->config().model_type, dir_.string(),
                       num_labels());
  }
  static constexpr std::size_t kMaxLength = 128;

 private:
  std::filesystem::path dir_;
  Precision precision_;
  text::WordPieceTokenizer tokenizer_;
  mutable nn::PretrainedClassifier model_;
  mutable std::mutex mutex_;
};

}  // namespace

std::vector<std::string> label_names_of_model(const std::filesystem::path& dir) {
  if (!std::filesystem::exists(dir / kModelCardName) && nn::is_sequence_classification_checkpoint(dir)) {
    return nn::sequence_classification_labels(dir);
  }
  return read_typed_model_card(dir).label_names;
}

void save_model_card(const std::filesystem::path& dir, const nlohmann::json& card) {
  std::filesystem::create_directories(dir);
  nlohmann::json full = card;
  full["format"] = kFormat;
  full["version"] = kVersion;
  core::write_file_atomic(dir / kModelCardName, full.dump(2) + "\n");
}

void save_torch_classifier(const std::filesystem::path& dir, nn::ClassifierModule& model, const nlohmann::json& card) {
  std::filesystem::create_directories(dir);
  nn::write_tensors(dir / "weights.safetensors", state_of(model), {{"format", kFormat}});
  save_model_card(dir, card);  // last: a folder with a card is complete
}

nlohmann::json read_model_card(const std::filesystem::path& dir) {
  const auto path = dir / kModelCardName;
  if (!std::filesystem::exists(path)) {
    throw ModelError(fmt::format("{}: no {} (not a model folder written by flipless train)", dir.string(), kModelCardName));
  }
  nlohmann::json card;
  try {
    card = nlohmann::json::parse(core::InputFile::open(path).bytes());
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
  if (card.value("format", "") != kFormat) throw ModelError(fmt::format("{}: field 'format': expected \"{}\"", path.string(), kFormat));
  if (card.value("version", 0) != kVersion) {
    throw ModelError(fmt::format("{}: field 'version': {} is not supported (this flipless reads version {})", path.string(),
                                 card.value("version", 0), kVersion));
  }
  if (!card.contains("kind") || !card.contains("label_names")) throw ModelError(fmt::format("{}: fields 'kind' and 'label_names' are required", path.string()));
  return card;
}

ModelCard read_typed_model_card(const std::filesystem::path& dir) {
  ModelCard c;
  c.fields = read_model_card(dir);
  c.source = dir / kModelCardName;
  const core::JsonFields<ModelError> f(c.fields, c.source);
  c.kind = f.text("kind");
  c.label_names = f.texts("label_names");
  if (c.label_names.empty()) f.fail("label_names", "expected at least one label");
  if (c.kind == "fasttext") {
    if (f.has("lowercase")) c.lowercase = f.flag("lowercase");
    return c;
  }
  if (c.kind != "frozen-head" && c.kind != "fine-tuned") f.fail("kind", fmt::format("unknown kind '{}' (frozen-head, fine-tuned, fasttext)", c.kind));
  c.base_model = f.text("base_model");
  c.layers = f.integer("layers");
  if (c.layers < 1) f.fail("layers", fmt::format("expected at least 1, got {}", c.layers));
  c.max_length = f.count("max_length");
  if (c.max_length < 1) f.fail("max_length", "expected at least 1");
  if (c.kind == "frozen-head") {
    c.pooling = f.text("pooling");
  } else {
    c.pooler = f.flag("pooler");
  }
  const auto head = f.object("head");
  c.head.kind = head.text("kind");
  c.head.hidden = head.integer("hidden");
  c.head.dropout = head.number("dropout");
  return c;
}

std::unique_ptr<models::Classifier> load_classifier(const std::filesystem::path& dir, torch::Device device, Precision precision) {
  check_precision(device, precision);
  if (!std::filesystem::exists(dir / kModelCardName) && nn::is_sequence_classification_checkpoint(dir)) {
    return std::make_unique<PretrainedHeadClassifier>(dir, device, precision);
  }
  const auto card = read_typed_model_card(dir);
  if (card.kind == "frozen-head") return std::make_unique<FrozenHeadClassifier>(dir, card, device, precision);
  if (card.kind == "fine-tuned") return std::make_unique<FineTunedClassifier>(dir, card, device, precision);
  return models::FastTextClassifier::load(dir / "model.bin", card.label_names.size(), card.lowercase);
}

}  // namespace flipless::train
