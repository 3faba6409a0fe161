#include "flipless/models/fasttext_classifier.h"

#include <fasttext/args.h>
#include <fasttext/fasttext.h>
#include <fasttext/vector.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "flipless/core/error.h"

namespace flipless::models {

namespace {
constexpr const char* kPrefix = "__label__";

// fastText reads whitespace-separated tokens; newlines end an example.
std::string normalise(std::string text, bool lowercase) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (lowercase) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return text;
}
}  // namespace

void FastTextConfig::validate() const {
  if (epochs < 1 || dim < 1 || word_ngrams < 1 || min_count < 1 || !(learning_rate > 0)) {
    throw ConfigError("fastText: epochs, dim, word n-grams and min count must be >= 1 and the learning rate > 0");
  }
}

FastTextClassifier::FastTextClassifier(std::unique_ptr<fasttext::FastText> model, std::size_t num_labels, bool lowercase)
    : model_(std::move(model)), num_labels_(num_labels), lowercase_(lowercase) {}

FastTextClassifier::~FastTextClassifier() = default;

std::string FastTextClassifier::line_of(const data::TextExample& ex) const {
  std::string line = normalise(ex.text_a, lowercase_);
  if (ex.text_b) line += " __sep__ " + normalise(*ex.text_b, lowercase_);
  return line;
}

std::unique_ptr<FastTextClassifier> FastTextClassifier::train(const data::Dataset& train, const FastTextConfig& config) {
  config.validate();
  if (!train.has_labels()) throw InputError(fmt::format("{}: fastText needs labelled training data", train.name));
  const auto input = std::filesystem::temp_directory_path() / fmt::format("flipless-fasttext-{}-{}.txt", ::getpid(), static_cast<const void*>(&train));
  FastTextClassifier shell(nullptr, train.num_labels(), config.lowercase);
  {
    std::ofstream out(input);
    for (const auto& ex : train.examples) out << kPrefix << ex.label << ' ' << shell.line_of(ex) << '\n';
    if (!out) throw IoError(fmt::format("{}: cannot write fastText training input", input.string()));
  }
  fasttext::Args args;
  args.input = input.string();
  args.model = fasttext::model_name::sup;
  args.loss = fasttext::loss_name::softmax;
  args.epoch = config.epochs;
  args.lr = config.learning_rate;
  args.dim = config.dim;
  args.wordNgrams = config.word_ngrams;
  args.minCount = config.min_count;
  args.thread = 1;
  args.seed = static_cast<int>(config.seed);
  args.verbose = 0;
  auto model = std::make_unique<fasttext::FastText>();
  try {
    model->train(args);
  } catch (const std::exception& e) {
    std::filesystem::remove(input);
    throw ModelError(fmt::format("fastText training failed: {}", e.what()));
  }
  std::filesystem::remove(input);
  if (model->getDictionary()->nlabels() != static_cast<std::int32_t>(train.num_labels())) {
    throw InputError(fmt::format("{}: fastText saw {} labels, the dataset has {}", train.name, model->getDictionary()->nlabels(),
                                 train.num_labels()));
  }
  return std::unique_ptr<FastTextClassifier>(new FastTextClassifier(std::move(model), train.num_labels(), config.lowercase));
}

std::unique_ptr<FastTextClassifier> FastTextClassifier::load(const std::filesystem::path& path, std::size_t num_labels, bool lowercase) {
  auto model = std::make_unique<fasttext::FastText>();
  try {
    model->loadModel(path.string());
  } catch (const std::exception& e) {
    throw ModelError(fmt::format("{}: not a fastText model: {}", path.string(), e.what()));
  }
  if (model->getDictionary()->nlabels() != static_cast<std::int32_t>(num_labels)) {
    throw ModelError(fmt::format("{}: the fastText model has {} labels, expected {}", path.string(), model->getDictionary()->nlabels(), num_labels));
  }
  return std::unique_ptr<FastTextClassifier>(new FastTextClassifier(std::move(model), num_labels, lowercase));
}

void FastTextClassifier::save(const std::filesystem::path& path) const {
  const std::lock_guard lock(mutex_);
  model_->saveModel(path.string());
}

ClassifierOutput FastTextClassifier::predict(std::span<const data::TextExample> examples) const {
  const std::lock_guard lock(mutex_);
  ClassifierOutput out;
  out.rows = examples.size();
  out.num_labels = num_labels_;
  out.dim = static_cast<std::size_t>(model_->getDimension());
  out.logits.assign(out.rows * out.num_labels, std::log(1e-8f));
  out.embeddings.resize(out.rows * out.dim);
  std::vector<std::pair<fasttext::real, std::string>> predictions;
  fasttext::Vector vec(model_->getDimension());
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const std::string line = line_of(examples[i]) + "\n";
    std::istringstream in(line);
    predictions.clear();
    model_->predictLine(in, predictions, static_cast<std::int32_t>(num_labels_), 0.0);
    for (const auto& [prob, label] : predictions) {
      const auto k = static_cast<std::size_t>(std::stoul(label.substr(std::char_traits<char>::length(kPrefix))));
      if (k < num_labels_) out.logits[i * num_labels_ + k] = std::log(std::max(static_cast<float>(prob), 1e-8f));
    }
    std::istringstream again(line);
    model_->getSentenceVector(again, vec);
    for (std::size_t d = 0; d < out.dim; ++d) out.embeddings[i * out.dim + d] = vec[static_cast<std::int64_t>(d)];
  }
  return out;
}

std::string FastTextClassifier::describe() const {
  return fmt::format("fastText, {} dims, {} labels", model_->getDimension(), num_labels_);
}

}  // namespace flipless::models
