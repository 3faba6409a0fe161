#include <gtest/gtest.h>

#include <cmath>

#include "flipless/core/error.h"
#include "flipless/ensemble/old_new.h"

namespace flipless::ensemble {
namespace {

TEST(OldNewEnsemble, CombinesLogitsAndProbabilities) {
  const std::vector<float> old_l = {2, 0, 0, 2}, new_l = {0, 4, 4, 0};
  EXPECT_EQ(combine(old_l, new_l, 2, Kind::kLogits, 0.75), (std::vector<float>{0.5f, 3.0f, 3.0f, 0.5f}));
  const auto p = combine(old_l, new_l, 2, Kind::kProbabilities, 0.5);
  const float p_old0 = 1 / (1 + std::exp(-2.0f)), p_new0 = 1 / (1 + std::exp(4.0f));
  EXPECT_NEAR(p[0], 0.5f * p_old0 + 0.5f * p_new0, 1e-6);
  EXPECT_NEAR(p[0] + p[1], 1.0f, 1e-6);
  EXPECT_THROW(combine(old_l, new_l, 2, Kind::kLogits, 1.5), InputError);
  EXPECT_THROW(combine(old_l, std::vector<float>{1, 2}, 2, Kind::kLogits, 0.5), InputError);
}

// Hand-checked: 4 examples, all of class 0. The logit ensemble predicts class 0 where
// (1 - a) * old_margin + a * new_margin > 0, margins being logit 0 minus logit 1.
TEST(OldNewEnsemble, ChoosesTheLowestNfrOnParWithTheNewModel) {
  const std::vector<std::int32_t> y = {0, 0, 0, 0};
  // Margins (class 0 minus class 1): old {+1, +1, +1, -1}; new {-0.5, +3, +3, +0.5}.
  const std::vector<float> old_l = {1, 0, 1, 0, 1, 0, -1, 0};
  const std::vector<float> new_l = {-0.5f, 0, 3, 0, 3, 0, 0.5f, 0};
  // New alone: 3/4 right; it breaks example 0 (an NF of 1/4).
  // a=0.5: margins {0.25, 2, 2, -0.25} -> 3/4 right, NF 0.  a=0.6: {0.1, 2.2, 2.2, -0.1} -> same.
  // a=0.7: {-0.05, 2.4, 2.4, 0.05} -> 3/4 right, NF 1/4.    a=0.9: {-0.35, ...,  0.35} -> same.
  const Choice c = choose_alpha(y, old_l, new_l, 2, Kind::kLogits);
  EXPECT_DOUBLE_EQ(c.new_model_accuracy, 0.75);
  ASSERT_EQ(c.candidates.size(), 5u);
  EXPECT_DOUBLE_EQ(c.candidates[0].nfr, 0.0);
  EXPECT_DOUBLE_EQ(c.candidates[2].nfr, 0.25);
  EXPECT_DOUBLE_EQ(c.alpha, 0.6);  // NF 0 at 0.5 and 0.6: the larger alpha wins the tie
  EXPECT_FALSE(c.fallback);
  // With a stricter accuracy bar nothing may qualify: the most accurate is taken and flagged.
  const Choice strict = choose_alpha(y, old_l, new_l, 2, Kind::kLogits, {0.5, 0.9}, -0.5);
  EXPECT_TRUE(strict.fallback);
}

TEST(NewModelVote, MajorityThenMeanProbabilityBreaksTies) {
  // Three models, two rows, three classes.
  const std::vector<std::vector<float>> logits = {
      {5, 0, 0, /**/ 0, 2, 0},
      {0, 5, 0, /**/ 0, 0, 1},
      {5, 0, 0, /**/ 3, 0, 0},
  };
  const Vote v = majority_vote(logits, 3);
  EXPECT_EQ(v.labels[0], 0);  // 2 votes against 1
  // Row 1: one vote each; the mean probability decides (class 0's 3 logit beats the others).
  const float p0 = (1.0f / 3) * (1 / (2 + std::exp(2.0f)) + 1 / (2 + std::exp(1.0f)) + std::exp(3.0f) / (std::exp(3.0f) + 2));
  EXPECT_NEAR(v.mean_probs[3], p0, 1e-6);
  EXPECT_EQ(v.labels[1], 0);
  EXPECT_THROW(majority_vote({logits[0]}, 3), InputError);
}

}  // namespace
}  // namespace flipless::ensemble
