#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/bert.h"
#include "flipless/nn/classifier.h"
#include "flipless/nn/tensor_io.h"

namespace flipless::nn {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

const std::filesystem::path kGolden = std::filesystem::path(FLIPLESS_TEST_DIR) / "golden/nn";

std::filesystem::path minilm_dir() {
  const char* env = std::getenv("FLIPLESS_MODELS_DIR");
  const char* home = std::getenv("HOME");
  return (env ? std::filesystem::path(env) : std::filesystem::path(home ? home : "/root") / ".cache/flipless/models") / "minilm-l6";
}

// Runs the encoder on the golden inputs and compares with the PyTorch/transformers outputs.
void expect_matches_golden(BertEncoder& encoder, const std::filesystem::path& outputs, double tolerance) {
  const auto golden = io::SafetensorsFile::open(outputs);
  encoder->eval();
  torch::NoGradGuard no_grad;
  const auto mask = read_tensor(golden, "attention_mask");
  const auto out = encoder->forward(read_tensor(golden, "input_ids"), read_tensor(golden, "token_type_ids"), mask);
  const auto expected_hidden = read_tensor(golden, "last_hidden");
  // Padded positions are not compared: their values are arbitrary in both implementations.
  const auto keep = mask.unsqueeze(-1).to(torch::kBool).expand_as(expected_hidden);
  const double hidden_err = (out.last_hidden - expected_hidden).abs().masked_select(keep).max().item<double>();
  const double pooled_err = (out.pooled - read_tensor(golden, "pooled")).abs().max().item<double>();
  EXPECT_LT(hidden_err, tolerance) << outputs;
  EXPECT_LT(pooled_err, tolerance) << outputs;
}

class TinyCheckpoints : public ::testing::TestWithParam<const char*> {};

TEST_P(TinyCheckpoints, MatchTransformers) {
  const auto dir = kGolden / GetParam();
  auto encoder = load_encoder(dir);
  expect_matches_golden(encoder, dir / "outputs.safetensors", 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Layouts, TinyCheckpoints, ::testing::Values("tiny-bert", "tiny-electra", "tiny-roberta"));

// *ForSequenceClassification checkpoints with their own heads: logits and the embedding the
// head reads match transformers' on a padded batch; id2label names the labels.
class TinyClassifiers : public ::testing::TestWithParam<const char*> {};

TEST_P(TinyClassifiers, OwnHeadsMatchTransformers) {
  const auto dir = kGolden / GetParam();
  ASSERT_TRUE(is_sequence_classification_checkpoint(dir));
  PretrainedClassifier model(dir);
  model.eval();
  EXPECT_EQ(model.num_labels(), 3);
  EXPECT_EQ(model.label_names(), (std::vector<std::string>{"negative", "neutral", "positive"}));
  const auto golden = io::SafetensorsFile::open(dir / "outputs.safetensors");
  torch::NoGradGuard no_grad;
  const auto out = model.forward({torch::Tensor(), read_tensor(golden, "input_ids"), read_tensor(golden, "token_type_ids"),
                                  read_tensor(golden, "attention_mask")});
  const auto logits = read_tensor(golden, "logits"), embedding = read_tensor(golden, "embedding");
  EXPECT_TRUE(torch::allclose(out.logits, logits, 1e-5, 1e-5)) << (out.logits - logits).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(out.embedding, embedding, 1e-5, 1e-5)) << (out.embedding - embedding).abs().max().item<double>();
}

INSTANTIATE_TEST_SUITE_P(Layouts, TinyClassifiers, ::testing::Values("tiny-bert-cls", "tiny-electra-cls", "tiny-roberta-cls"));

TEST(PretrainedClassifier, EncodersWithoutAHeadAndBadHeadsAreOneClearLine) {
  EXPECT_FALSE(is_sequence_classification_checkpoint(kGolden / "tiny-bert"));
  EXPECT_NE(error_of<ModelError>([] { PretrainedClassifier m(kGolden / "tiny-bert"); }).find("no classification head"), std::string::npos);
  TempDir dir;
  for (const char* f : {"config.json", "vocab.txt"}) std::filesystem::copy_file(kGolden / "tiny-bert-cls" / f, dir.path() / f);
  auto tensors = std::map<std::string, torch::Tensor>();
  const auto file = io::SafetensorsFile::open(kGolden / "tiny-bert-cls/model.safetensors");
  for (const auto& t : file.tensors()) tensors[t.name] = read_tensor(file, t.name);
  tensors["classifier.bias"] = torch::zeros({5});  // 3 rows of weights, 5 biases
  write_tensors(dir.path() / "model.safetensors", tensors);
  EXPECT_NE(error_of<ModelError>([&] { PretrainedClassifier m(dir.path()); }).find("tensor 'classifier.bias' has shape [5], expected [3]"),
            std::string::npos);
}

TEST(Bert, RealMiniLmMatchesTransformers) {
  const auto dir = minilm_dir();
  if (!std::filesystem::exists(dir / "model.safetensors")) GTEST_SKIP() << "no MiniLM at " << dir << ": run scripts/fetch_models.sh";
  auto encoder = load_encoder(dir);
  EXPECT_TRUE(encoder->has_pooler());
  EXPECT_EQ(encoder->config().num_hidden_layers, 6);
  expect_matches_golden(encoder, kGolden / "minilm_outputs.safetensors", 1e-4);
}

TEST(Bert, TruncatedCopyKeepsTheFirstLayers) {
  auto two = load_encoder(kGolden / "tiny-bert", 1);
  EXPECT_EQ(two->config().num_hidden_layers, 1);
  EXPECT_NE(error_of<ModelError>([] { load_encoder(kGolden / "tiny-bert", 5); }).find("asked for 5 layers, the model has 2"),
            std::string::npos);
}

TEST(Bert, BadCheckpointsAreOneClearLine) {
  TempDir dir;
  std::filesystem::copy_file(kGolden / "tiny-bert/config.json", dir.path() / "config.json");
  dir.write("pytorch_model.bin", "PK pickle");
  EXPECT_NE(error_of<ModelError>([&] { load_encoder(dir.path()); }).find("pickled checkpoint"), std::string::npos);
  std::filesystem::remove(dir.path() / "pytorch_model.bin");
  EXPECT_NE(error_of<ModelError>([&] { load_encoder(dir.path()); }).find("no model.safetensors"), std::string::npos);
  // A checkpoint whose tensors do not match its config.
  std::filesystem::copy_file(kGolden / "tiny-electra/model.safetensors", dir.path() / "model.safetensors");
  const auto msg = error_of<ModelError>([&] { load_encoder(dir.path()); });
  EXPECT_NE(msg.find("has shape 100x16 but config.json implies 100x32"), std::string::npos) << msg;
  dir.write("config.json", R"({"model_type": "gpt2", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "intermediate_size": 8})");
  EXPECT_NE(error_of<ModelError>([&] { load_encoder(dir.path()); }).find("field 'model_type': 'gpt2' is not a BERT-family encoder"),
            std::string::npos);
  dir.write("config.json", R"({"model_type": "bert", "hidden_size": 8})");
  EXPECT_NE(error_of<ModelError>([&] { load_encoder(dir.path()); }).find("config.json"), std::string::npos);
  EXPECT_THROW(load_encoder(dir.path() / "nope"), ModelError);
}

TEST(TensorIo, RoundTrips) {
  TempDir dir;
  const auto a = torch::randn({3, 4});
  const auto b = torch::arange(5, torch::kInt64);
  write_tensors(dir.path() / "t.safetensors", {{"a", a}, {"b", b}}, {{"k", "v"}});
  const auto f = io::SafetensorsFile::open(dir.path() / "t.safetensors");
  EXPECT_TRUE(torch::equal(read_tensor(f, "a"), a));
  EXPECT_TRUE(torch::equal(read_tensor(f, "b"), b));
  EXPECT_THROW(read_tensor(f, "c"), ModelError);
}

}  // namespace
}  // namespace flipless::nn
