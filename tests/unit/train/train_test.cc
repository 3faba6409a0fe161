#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <cmath>
#include <random>

#include "../test_util.h"
#include "words.h"
#include "flipless/core/error.h"
#include "flipless/data/readers.h"
#include "flipless/models/fasttext_classifier.h"
#include "flipless/models/logits_file_classifier.h"
#include "flipless/models/registry.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/nn/classifier.h"
#include "flipless/train/features.h"
#include "flipless/train/inputs.h"
#include "flipless/train/saved_model.h"
#include "flipless/train/trainer.h"

namespace flipless::train {
namespace {

using flipless::testing::error_of;
using flipless::testing::free_port;
using flipless::testing::TempDir;
using flipless::testing::words_dataset;

const std::filesystem::path kTinyBert = std::filesystem::path(FLIPLESS_TEST_DIR) / "golden/nn/tiny-bert";

// Linearly separable features: the label is the sign of the first coordinate.
FeatureSource separable(std::int64_t n, std::uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randn({n, 8});
  auto y = (x.select(1, 0) > 0).to(torch::kInt64);
  return FeatureSource(x, y);
}

TEST(Trainer, LossDecreasesAndTheHeadLearns) {
  const auto data = separable(512, 1);
  nn::FeatureClassifier model(8, 2, nn::HeadConfig{"linear", 16, 0.0});
  TrainConfig config;
  config.epochs = 5;
  config.learning_rate = 0.05;
  const auto result = train(model, data, &data, config);
  ASSERT_EQ(result.epochs.size(), 5u);
  EXPECT_LT(result.epochs.back().train_loss, 0.6 * result.epochs.front().train_loss);
  EXPECT_GT(*result.epochs.back().validation_accuracy, 0.95);
}

TEST(Trainer, SameSeedSameBytes) {
  const auto data = separable(200, 2);
  auto run = [&](std::uint64_t seed) {
    torch::manual_seed(seed);
    nn::FeatureClassifier model(8, 2, nn::HeadConfig{"mlp", 16, 0.1});
    TrainConfig config;
    config.epochs = 2;
    config.seed = seed;
    config.learning_rate = 0.01;
    train(model, data, nullptr, config);
    return predict(model, data, 64).logits;
  };
  EXPECT_TRUE(torch::equal(run(3), run(3)));
  EXPECT_FALSE(torch::equal(run(3), run(4)));
}

TEST(Trainer, RejectsBadConfigs) {
  const auto data = separable(10, 0);
  nn::FeatureClassifier model(8, 2, nn::HeadConfig{});
  TrainConfig config;
  config.epochs = 0;
  EXPECT_EQ(error_of<ConfigError>([&] { train(model, data, nullptr, config); }), "epochs must be at least 1, got 0");
  EXPECT_THROW(nn::FeatureClassifier(8, 2, nn::HeadConfig{"transformer", 1, 0.1}), ConfigError);
  EXPECT_THROW(nn::FeatureClassifier(8, 1, nn::HeadConfig{}), ConfigError);
}

TEST(FineTuning, TinyBertLearnsAndRoundTripsThroughItsFolder) {
  const auto tokenizer = text::WordPieceTokenizer::from_checkpoint_dir(kTinyBert);
  const auto train_set = words_dataset(64, 5), test_set = words_dataset(32, 6);
  torch::manual_seed(0);
  nn::EncoderClassifier model(nn::load_encoder(kTinyBert), 2, nn::HeadConfig{"linear", 16, 0.0});
  const TokenSource train_source(tokenizer, train_set, 32), test_source(tokenizer, test_set, 32);
  TrainConfig config;
  config.epochs = 8;
  config.batch_size = 16;
  config.learning_rate = 3e-3;
  config.warmup_ratio = 0.0;
  const auto result = train(model, train_source, &test_source, config);
  EXPECT_LT(result.epochs.back().train_loss, result.epochs.front().train_loss);
  EXPECT_GT(*result.epochs.back().validation_accuracy, 0.8);

  // Saved and loaded as a Classifier, it predicts exactly what the trained module predicts.
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "encoder");
  for (const char* f : {"config.json", "vocab.txt"}) std::filesystem::copy_file(kTinyBert / f, dir.path() / "encoder" / f);
  save_torch_classifier(dir.path(), model,
                        {{"kind", "fine-tuned"}, {"label_names", {"0", "1"}}, {"base_model", kTinyBert.string()}, {"layers", 2},
                         {"pooler", true}, {"max_length", 32}, {"head", {{"kind", "linear"}, {"hidden", 16}, {"dropout", 0.0}}}});
  const auto loaded = load_classifier(dir.path());
  const auto out = loaded->predict(test_set.examples);
  const auto expected = predict(model, test_source, 8).logits;
  ASSERT_EQ(out.rows, test_set.size());
  const auto got = torch::from_blob(const_cast<float*>(out.logits.data()), {static_cast<std::int64_t>(out.rows), 2}).clone();
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6));
  EXPECT_NE(loaded->describe().find("fine-tuned"), std::string::npos);
  // Loaded for bf16 autocast (flipless predict/serve --precision bf16), it predicts the same
  // labels, its logits within bf16 rounding of float32's.
  const auto bf16 = load_classifier(dir.path(), torch::kCPU, Precision::kBFloat16)->predict(test_set.examples);
  const auto got16 = torch::from_blob(const_cast<float*>(bf16.logits.data()), {static_cast<std::int64_t>(bf16.rows), 2}).clone();
  EXPECT_LT((got16 - expected).abs().max().item<double>(), 0.25);
  EXPECT_TRUE(torch::equal(got16.argmax(1), expected.argmax(1)));
}

TEST(Features, ComputedOnceThenCached) {
  TempDir dir;
  const FeatureExtractor extractor(FeatureSpec{kTinyBert, 1, "mean", 32});
  const auto ds = words_dataset(20, 1);
  bool hit = true;
  const auto first = cached_features(extractor, ds, dir.path(), {}, &hit);
  EXPECT_FALSE(hit);
  EXPECT_EQ(first.sizes(), (std::vector<std::int64_t>{20, 32}));
  const auto second = cached_features(extractor, ds, dir.path(), {}, &hit);
  EXPECT_TRUE(hit);
  EXPECT_TRUE(torch::equal(first, second));
  // Batched, length-sorted extraction equals one example at a time.
  data::Dataset one = ds;
  one.examples.resize(1);
  EXPECT_TRUE(torch::allclose(extractor.extract(one), first.slice(0, 0, 1), 1e-5, 1e-6));
  // Another dataset, pooling or layer count is another cache entry; a damaged entry is rebuilt.
  const FeatureExtractor cls(FeatureSpec{kTinyBert, 1, "cls", 32});
  EXPECT_NE(cls.cache_key(ds), extractor.cache_key(ds));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) std::filesystem::resize_file(e.path(), 20);
  cached_features(extractor, ds, dir.path(), {}, &hit);
  EXPECT_FALSE(hit);
  EXPECT_THROW(FeatureExtractor(FeatureSpec{kTinyBert, 1, "max", 32}), ConfigError);
}

TEST(FastText, TrainsPredictsAndRoundTrips) {
  const auto train_set = words_dataset(200, 1), test_set = words_dataset(50, 2);
  models::FastTextConfig config;
  config.epochs = 20;
  config.dim = 8;
  const auto model = models::FastTextClassifier::train(train_set, config);
  const auto out = model->predict(test_set.examples);
  ASSERT_EQ(out.rows, 50u);
  ASSERT_EQ(out.num_labels, 2u);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < out.rows; ++i) {
    const int pred = out.logits[2 * i + 1] > out.logits[2 * i] ? 1 : 0;
    correct += pred == test_set.examples[i].label;
  }
  EXPECT_GT(correct, 45u);
  TempDir dir;
  model->save(dir.path() / "model.bin");
  const auto loaded = models::FastTextClassifier::load(dir.path() / "model.bin", 2, true);
  EXPECT_EQ(loaded->predict(test_set.examples).logits, out.logits);
  EXPECT_NE(error_of<ModelError>([&] { models::FastTextClassifier::load(dir.path() / "model.bin", 3, true); }).find("has 2 labels, expected 3"),
            std::string::npos);
}

TEST(LogitsFile, StoredOldLogitsAreLookedUpById) {
  TempDir dir;
  const auto ds = words_dataset(4, 1);
  const auto path = dir.write("old.jsonl", "{\"id\": \"w3\", \"logits\": [0.5, -1]}\n{\"id\": \"w0\", \"logits\": [1, 2]}\n"
                                           "{\"id\": \"w1\", \"logits\": [3, 4]}\n{\"id\": \"w2\", \"logits\": [5, 6]}\n");
  const models::LogitsFileClassifier old(path);
  EXPECT_EQ(old.num_labels(), 2u);
  const auto out = old.predict(ds.examples);  // dataset order w0..w3, not file order
  EXPECT_EQ(out.logits, (std::vector<float>{1, 2, 3, 4, 5, 6, 0.5f, -1}));
  const auto probs = dir.write("p.jsonl", "{\"id\": \"w0\", \"probs\": [0.25, 0.75]}\n");
  EXPECT_FLOAT_EQ(models::LogitsFileClassifier(probs).predict(std::span(ds.examples).first(1)).logits[1], std::log(0.75f));
  EXPECT_EQ(error_of<InputError>([&] { models::LogitsFileClassifier(probs).predict(ds.examples); }),
            probs.string() + ": no logits for id 'w1'");
  EXPECT_THROW(models::LogitsFileClassifier(dir.write("l.jsonl", "{\"id\": \"a\", \"pred\": 1}\n")), InputError);
}

// A free TCP port on loopback for the process group's store.
TEST(Distributed, TwoProcessesFollowOneProcessWithTheGlobalBatch) {
  TempDir dir;
  const std::string worker = FLIPLESS_DDP_WORKER;
  const int port = free_port();
  const auto a = dir.path() / "rank0.safetensors", b = dir.path() / "rank1.safetensors", ref = dir.path() / "single.safetensors";
  // 250 rows, 16 per process: 7 full global batches of 32, then 16 + 10 rows.
  const std::string both = fmt::format("'{0}' 2 0 {1} 16 '{2}' & '{0}' 2 1 {1} 16 '{3}'; wait", worker, port, a.string(), b.string());
  ASSERT_EQ(std::system(("bash -c \"" + both + "\"").c_str()), 0);
  ASSERT_EQ(std::system(fmt::format("'{}' 1 0 0 32 '{}'", worker, ref.string()).c_str()), 0);
  const auto fa = io::SafetensorsFile::open(a), fb = io::SafetensorsFile::open(b), fr = io::SafetensorsFile::open(ref);
  ASSERT_FALSE(fr.tensors().empty());
  for (const auto& t : fr.tensors()) {
    const auto pa = nn::read_tensor(fa, t.name), pb = nn::read_tensor(fb, t.name), pr = nn::read_tensor(fr, t.name);
    EXPECT_TRUE(torch::equal(pa, pb)) << t.name;  // the two processes agree exactly
    EXPECT_TRUE(torch::allclose(pa, pr, 1e-4, 1e-5)) << t.name << " max diff " << (pa - pr).abs().max().item<double>();
  }
}

// A Hugging Face classifier checkpoint (no flipless card) loads as it is, with its own head and
// id2label, and predicts what the module predicts.
TEST(SavedModels, AHuggingFaceClassifierCheckpointLoadsWithItsOwnHead) {
  const auto dir = std::filesystem::path(FLIPLESS_TEST_DIR) / "golden/nn/tiny-bert-cls";
  const auto loaded = load_classifier(dir);
  EXPECT_EQ(loaded->num_labels(), 3u);
  EXPECT_NE(loaded->describe().find("own classification head"), std::string::npos) << loaded->describe();
  EXPECT_EQ(label_names_of_model(dir), (std::vector<std::string>{"negative", "neutral", "positive"}));
  const auto test_set = words_dataset(10, 3);
  const auto out = loaded->predict(test_set.examples);
  ASSERT_EQ(out.rows, 10u);
  ASSERT_EQ(out.dim, 32u);
  nn::PretrainedClassifier module(dir);
  const auto tokenizer = text::WordPieceTokenizer::from_checkpoint_dir(dir);
  const auto expected = predict(module, TokenSource(tokenizer, test_set, 128), 4).logits;
  const auto got = torch::from_blob(const_cast<float*>(out.logits.data()), {10, 3}).clone();
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6));
  const auto bf16 = load_classifier(dir, torch::kCPU, Precision::kBFloat16)->predict(test_set.examples);  // bf16 autocast loads too
  const auto got16 = torch::from_blob(const_cast<float*>(bf16.logits.data()), {10, 3}).clone();
  EXPECT_LT((got16 - expected).abs().max().item<double>(), 0.25);
  // A plain encoder checkpoint is neither a flipless folder nor a classifier.
  EXPECT_NE(error_of<ModelError>([&] { load_classifier(kTinyBert); }).find("no flipless_model.json"), std::string::npos);
}

TEST(SavedModels, BadFoldersAndNamesAreOneClearLine) {
  TempDir dir;
  EXPECT_NE(error_of<ModelError>([&] { load_classifier(dir.path()); }).find("no flipless_model.json"), std::string::npos);
  dir.write("flipless_model.json", R"({"format": "flipless-classifier", "version": 9, "kind": "fasttext", "label_names": ["a", "b"]})");
  EXPECT_NE(error_of<ModelError>([&] { load_classifier(dir.path()); }).find("field 'version': 9 is not supported"), std::string::npos);
  dir.write("flipless_model.json", R"({"format": "flipless-classifier", "version": 1, "kind": "svm", "label_names": ["a", "b"]})");
  EXPECT_NE(error_of<ModelError>([&] { load_classifier(dir.path()); }).find("unknown kind 'svm'"), std::string::npos);
  EXPECT_NE(error_of<ModelError>([] { models::resolve_model("bert-gigantic"); }).find("unknown model 'bert-gigantic'"), std::string::npos);
  EXPECT_EQ(models::resolve_model(kTinyBert.string()), kTinyBert);
}

}  // namespace
}  // namespace flipless::train
