// Fine-tuned encoders train the head their Hugging Face *ForSequenceClassification has: the
// same layers on the same input, initialised N(0, initializer_range) with zero biases.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "flipless/core/error.h"
#include "flipless/nn/bert.h"
#include "flipless/nn/classifier.h"

namespace flipless::nn {
namespace {

const std::filesystem::path kGolden = std::filesystem::path(FLIPLESS_TEST_DIR) / "golden/nn";

ModelInputs tokens() {
  ModelInputs in;
  in.input_ids = torch::tensor({{2, 7, 9, 11, 3, 0}, {2, 5, 6, 3, 0, 0}}, torch::kInt64);
  in.token_type_ids = torch::zeros_like(in.input_ids);
  in.attention_mask = in.input_ids.ne(0).to(torch::kInt64);
  return in;
}

// With the checkpoint's own head weights copied in, the trainable hf head computes what the
// Hugging Face classifier computes, for BERT (pooler), ELECTRA (dense + GELU on [CLS]) and
// RoBERTa (dense + tanh on [CLS]).
class HfHead : public ::testing::TestWithParam<std::string> {};

TEST_P(HfHead, MatchesTheCheckpointsOwnClassifier) {
  const auto dir = kGolden / (GetParam() + "-cls");
  PretrainedClassifier reference(dir);
  reference.eval();
  EncoderClassifier model(load_encoder(dir), reference.num_labels(), HeadConfig{"hf", 0, 0.1});
  model.eval();
  {
    torch::NoGradGuard no_grad;
    auto theirs = reference.named_parameters();
    for (auto& p : model.named_parameters()) {
      const std::string key = p.key();
      std::string from = key;
      if (key.rfind("head.out_proj.", 0) == 0) from = "out." + key.substr(14);
      if (key.rfind("head.dense.", 0) == 0) from = "dense." + key.substr(11);
      const auto* src = theirs.find(from);
      ASSERT_NE(src, nullptr) << key << " has no counterpart " << from;
      p.value().copy_(*src);
    }
  }
  const auto in = tokens();
  const auto a = model.forward(in), b = reference.forward(in);
  EXPECT_TRUE(torch::allclose(a.logits, b.logits, 1e-6, 1e-6)) << GetParam();
  EXPECT_TRUE(torch::allclose(a.embedding, b.embedding, 1e-6, 1e-6)) << GetParam();
  const bool dense = GetParam() != "tiny-bert";
  EXPECT_EQ(model.named_parameters().find("head.dense.weight") != nullptr, dense);
}

INSTANTIATE_TEST_SUITE_P(Layouts, HfHead, ::testing::Values("tiny-bert", "tiny-electra", "tiny-roberta"));

TEST(HfHeadInit, WeightsAreNormalWithTheConfigsRangeAndBiasesZero) {
  auto config = BertConfig::from_json_file(kGolden / "tiny-electra" / "config.json");
  config.hidden_size = 256;  // enough values for the spread to be measured
  config.initializer_range = 0.02;
  torch::manual_seed(0);
  SequenceClassificationHead head(config, 2, 0.1);
  for (const auto& p : head->named_parameters()) {
    if (p.key().find("bias") != std::string::npos) {
      EXPECT_EQ(p.value().abs().max().item<double>(), 0.0) << p.key();
    } else {
      EXPECT_NEAR(p.value().std().item<double>(), 0.02, 0.002) << p.key();
      EXPECT_NEAR(p.value().mean().item<double>(), 0.0, 0.002) << p.key();
    }
  }
  EXPECT_TRUE(head->reads_cls());
  EXPECT_THROW(FeatureClassifier(8, 2, HeadConfig{"hf", 0, 0.1}), ConfigError);
}

}  // namespace
}  // namespace flipless::nn
