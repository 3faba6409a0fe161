// The held-out gate (train::fit_gate, methods::gated_fusion_heldout): it learns where the new
// model fails when the rows show it, is deterministic and leaves the shared generator alone,
// cross-fitting never lets a row's own label reach its output, and bad rows are refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/train/gate_fit.h"

namespace flipless::train {
namespace {

using flipless::testing::error_of;

// 400 rows, 8-d embeddings. Where embedding[0] > 0 (about half the rows) the new model is
// confidently wrong and the old one right; elsewhere the new model is right and the old one
// right only on every third row.
GateRows routed_rows(std::int64_t n = 400, std::uint64_t seed = 7) {
  torch::manual_seed(seed);
  GateRows r;
  r.embeddings = torch::randn({n, 8});
  r.labels = torch::randint(0, 2, {n}, torch::kLong);
  const auto right = torch::nn::functional::one_hot(r.labels, 2).to(torch::kFloat32) * 4 - 2;  // +2 on the label, -2 elsewhere
  const auto region = r.embeddings.select(1, 0).gt(0).unsqueeze(1);
  r.new_logits = torch::where(region, -right, right);
  const auto every_third = (torch::arange(n) % 3).eq(0).unsqueeze(1);
  r.old_logits = torch::where(region.logical_or(every_third), right, -right);
  return r;
}

double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) { return logits.argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>(); }

GateFitConfig config() {
  GateFitConfig c;
  c.lr = 1e-2;
  c.epochs = 40;
  c.seed = 3;
  return c;
}

TEST(GateFit, LearnsToFallBackToTheOldModelWhereTheNewOneFails) {
  const auto rows = routed_rows();
  auto fitted = fit_gate(rows, config());
  EXPECT_EQ(fitted.steps, 40 * 13);  // 13 batches of 32 over 400 rows, 40 epochs
  const auto test = routed_rows(400, 8);  // other rows than it was fitted on
  const auto out = apply_gate(fitted.gate, test);
  const auto region = test.embeddings.select(1, 0).gt(0);
  const double in = out.gate.masked_select(region).mean().item<double>(), outside = out.gate.masked_select(region.logical_not()).mean().item<double>();
  EXPECT_LT(in, 0.2) << "gate on rows the new model gets wrong";
  EXPECT_GT(outside, 0.8) << "gate on rows the new model gets right";
  EXPECT_GT(accuracy(out.logits, test.labels), 0.95);
  EXPECT_LT(accuracy(test.new_logits, test.labels), 0.6);
  EXPECT_LT(accuracy(test.old_logits, test.labels), 0.8);
}

TEST(GateFit, IsDeterministicAndLeavesTheSharedGeneratorAlone) {
  const auto rows = routed_rows();
  torch::manual_seed(11);
  const auto expected_next = torch::rand({4});
  torch::manual_seed(11);
  auto a = fit_gate(rows, config());
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_next));
  auto b = fit_gate(rows, config());
  const auto pa = a.gate->parameters(), pb = b.gate->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << i;
  auto other = config();
  other.seed = 4;
  EXPECT_FALSE(torch::equal(fit_gate(rows, other).gate->parameters()[0], pa[0]));
}

TEST(GateFit, CrossFittingKeepsEachRowsLabelOutOfItsOwnOutput) {
  auto rows = routed_rows(120);
  const auto before = cross_fit_gate(rows, config(), 2);
  // Row 5's label changed: only rows fitted with row 5 (the other fold) may change, never row 5.
  rows.labels = rows.labels.clone();
  rows.labels[5] = 1 - rows.labels[5].item<std::int64_t>();
  const auto after = cross_fit_gate(rows, config(), 2);
  EXPECT_TRUE(torch::equal(before.logits[5], after.logits[5]));
  EXPECT_FLOAT_EQ(before.gate[5].item<float>(), after.gate[5].item<float>());
  EXPECT_FALSE(torch::equal(before.gate, after.gate)) << "the other fold's gate saw the changed label";
  EXPECT_GT(accuracy(before.logits, rows.labels), 0.8);  // out-of-fold, it still routes
}

TEST(GateFit, RefusesBadRowsAndSettings) {
  auto rows = routed_rows(40);
  auto bad = rows;
  bad.old_logits = rows.old_logits.slice(0, 0, 39);
  EXPECT_NE(error_of<InputError>([&] { fit_gate(bad, config()); }).find("shapes disagree"), std::string::npos);
  EXPECT_EQ(error_of<InputError>([&] { fit_gate(rows.subset(torch::tensor({0}, torch::kLong)), config()); }), "a gate needs at least 2 rows to fit, got 1");
  EXPECT_NE(error_of<InputError>([&] { cross_fit_gate(rows, config(), 30); }).find("30 folds over 40 rows"), std::string::npos);
  auto c = config();
  c.lr = 0;
  EXPECT_EQ(error_of<ConfigError>([&] { fit_gate(rows, c); }), "gate learning rate must be positive, got 0");
  c = config();
  c.epochs = 0;
  EXPECT_EQ(error_of<ConfigError>([&] { fit_gate(rows, c); }), "gate epochs must be >= 1, got 0");
  c = config();
  c.keep_weight = -1;
  EXPECT_EQ(error_of<ConfigError>([&] { fit_gate(rows, c); }), "gate keep weight must be >= 0, got -1");
}

}  // namespace
}  // namespace flipless::train
