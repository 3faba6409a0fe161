#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/metrics/flip_counts.h"
#include "flipless/metrics/rates.h"
#include "flipless/metrics/summary.h"
#include "flipless/metrics/uncertainty.h"

namespace flipless::metrics {
namespace {

using flipless::testing::error_of;
using Labels = std::vector<std::int32_t>;

// 8 examples, 3 classes, checked by hand: both correct {0,2,5,7}, negative flips {1,3},
// positive flip {6}, both wrong {4}.
const Labels kY = {0, 1, 2, 0, 1, 2, 0, 1};
const Labels kOld = {0, 1, 2, 0, 2, 2, 1, 1};
const Labels kNew = {0, 2, 2, 1, 0, 2, 0, 1};

TEST(FlipCounts, HandCheckedFixture) {
  const FlipCounts c = count_flips(kY, kOld, kNew);
  EXPECT_EQ(c.both_correct, 4);
  EXPECT_EQ(c.negative_flips, 2);
  EXPECT_EQ(c.positive_flips, 1);
  EXPECT_EQ(c.both_wrong, 1);
  EXPECT_DOUBLE_EQ(negative_flip_rate(c), 2.0 / 8);
  EXPECT_DOUBLE_EQ(positive_flip_rate(c), 1.0 / 8);
  EXPECT_DOUBLE_EQ(accuracy(kY, kOld), 6.0 / 8);
  EXPECT_DOUBLE_EQ(accuracy(kY, kNew), 5.0 / 8);
  EXPECT_DOUBLE_EQ(*negative_flip_impact(c), 2.0 / 3);
  EXPECT_DOUBLE_EQ(*backward_trust_compatibility(c), 4.0 / 6);
  EXPECT_DOUBLE_EQ(*backward_error_compatibility(c), 1.0 / 3);
  EXPECT_DOUBLE_EQ(*metric_value(c, Metric::kAccuracyDelta), -1.0 / 8);
  EXPECT_DOUBLE_EQ(negative_flip_rate(kY, kOld, kNew), 0.25);
}

TEST(FlipCounts, PerClassHandChecked) {
  const auto per_class = per_class_flips(kY, kOld, kNew, 3);
  ASSERT_EQ(per_class.size(), 3u);
  EXPECT_EQ(per_class[0].counts.both_correct, 1);
  EXPECT_EQ(per_class[0].counts.negative_flips, 1);
  EXPECT_EQ(per_class[0].counts.positive_flips, 1);
  EXPECT_EQ(per_class[1].counts.negative_flips, 1);
  EXPECT_EQ(per_class[1].counts.both_wrong, 1);
  EXPECT_EQ(per_class[1].counts.both_correct, 1);
  EXPECT_EQ(per_class[2].counts.both_correct, 2);
  EXPECT_THROW(per_class_flips(kY, kOld, kNew, 2), InputError);  // label 2 out of range
}

TEST(FlipCounts, WeightsMakeCostWeightedRates) {
  const std::vector<double> w = {1, 3, 1, 1, 1, 1, 1, 1};  // example 1 (a negative flip) costs 3
  const FlipCounts c = count_flips(kY, kOld, kNew, w);
  EXPECT_DOUBLE_EQ(negative_flip_rate(c), 4.0 / 10);
  EXPECT_THROW(count_flips(kY, kOld, kNew, std::vector<double>{1, 2}), InputError);
  EXPECT_THROW(count_flips(kY, kOld, kNew, std::vector<double>{1, -1, 1, 1, 1, 1, 1, 1}), InputError);
}

TEST(FlipCounts, SixtyFourBitLabelsCountAsThirtyTwoBit) {
  const std::vector<std::int64_t> y(kY.begin(), kY.end()), o(kOld.begin(), kOld.end()), n(kNew.begin(), kNew.end());
  const std::vector<double> w = {1, 3, 1, 1, 1, 1, 1, 1};
  for (const auto& weights : {std::vector<double>{}, w}) {
    const FlipCounts wide = count_flips(y, o, n, weights), narrow = count_flips(kY, kOld, kNew, weights);
    EXPECT_EQ(wide.both_correct, narrow.both_correct);
    EXPECT_EQ(wide.negative_flips, narrow.negative_flips);
    EXPECT_EQ(wide.positive_flips, narrow.positive_flips);
    EXPECT_EQ(wide.both_wrong, narrow.both_wrong);
  }
  // Labels past the 32-bit range are compared whole, never narrowed (2^32 + 1 is not 1).
  const std::vector<std::int64_t> big = {(std::int64_t{1} << 32) + 1}, one = {1};
  EXPECT_EQ(count_flips(big, one, big).positive_flips, 1);
  EXPECT_EQ(error_of<InputError>([&] { count_flips(std::vector<std::int64_t>{}, {}, {}); }),
            "no examples: flip metrics need at least one");
}

TEST(FixAndNewFaultRates, HandChecked) {
  const Labels candidate = {0, 1, 2, 1, 0, 2, 0, 0};  // NFs {3, 7}; reference (kNew) NFs {1, 3}
  EXPECT_DOUBLE_EQ(*fix_rate(kY, kOld, kNew, candidate), 0.5);
  EXPECT_DOUBLE_EQ(*new_fault_rate(kY, kOld, kNew, candidate), 0.5);
  EXPECT_DOUBLE_EQ(*fix_rate(kY, kOld, kNew, kY), 1.0);
  EXPECT_DOUBLE_EQ(*new_fault_rate(kY, kOld, kNew, kY), 0.0);
  EXPECT_FALSE(fix_rate(kY, kOld, kOld, candidate));  // reference has no negative flip
  EXPECT_DOUBLE_EQ(*relative_flip_reduction(0.0218, 0.0078), (0.0218 - 0.0078) / 0.0218);
  EXPECT_FALSE(relative_flip_reduction(0.0, 0.01));
}

TEST(Rates, UndefinedCasesAreNotZero) {
  const Labels y = {0, 1}, all_wrong = {1, 0};
  EXPECT_FALSE(backward_trust_compatibility(count_flips(y, all_wrong, y)));  // old never right
  EXPECT_FALSE(negative_flip_impact(count_flips(y, all_wrong, y)));          // new never wrong
  EXPECT_FALSE(backward_error_compatibility(count_flips(y, y, y)));
  const auto msg = error_of<InputError>([] { count_flips(Labels{}, Labels{}, Labels{}); });
  EXPECT_EQ(msg, "no examples: flip metrics need at least one");
  EXPECT_THROW(accuracy({}, {}), InputError);
  EXPECT_THROW(count_flips(y, y, Labels{0}), InputError);
  EXPECT_THROW(negative_flip_rate(count_flips(y, y, y, std::vector<double>{0, 0})), InputError);
}

TEST(Rates, MetricNamesRoundTrip) {
  for (Metric m : kAllMetrics) EXPECT_EQ(metric_from_name(metric_name(m)), m);
  EXPECT_EQ(metric_from_name("acc_new"), Metric::kNewAccuracy);
  EXPECT_FALSE(metric_from_name("nfr2"));
}

TEST(Scores, ArgmaxTakesTheLowestIndexOnTies) {
  const std::vector<float> scores = {0.1f, 0.9f, 0.5f, 0.5f, 2.0f, -1.0f};
  EXPECT_EQ(labels_from_scores(scores, 2), (Labels{1, 0, 0}));
  EXPECT_THROW(labels_from_scores(scores, 4), InputError);
}

// Random (truth, old, new) with a realistic amount of agreement.
struct Triple {
  Labels y, old_pred, new_pred;
};
Triple random_triple(std::uint64_t seed, std::size_t n, int k) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> label(0, k - 1);
  std::bernoulli_distribution old_ok(0.8), new_ok(0.85);
  Triple t;
  for (std::size_t i = 0; i < n; ++i) {
    const int y = label(rng);
    t.y.push_back(y);
    t.old_pred.push_back(old_ok(rng) ? y : (y + 1 + label(rng) % (k - 1)) % k);
    t.new_pred.push_back(new_ok(rng) ? y : (y + 1 + label(rng) % (k - 1)) % k);
  }
  return t;
}

class MetricProperties : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(MetricProperties, Hold) {
  const Triple t = random_triple(GetParam(), 200 + GetParam() * 37, 3);
  const FlipCounts c = count_flips(t.y, t.old_pred, t.new_pred);
  const double nfr = negative_flip_rate(c), pfr = positive_flip_rate(c);
  EXPECT_GE(nfr, 0.0);
  EXPECT_LE(nfr, 1.0);
  EXPECT_EQ(negative_flip_rate(t.y, t.new_pred, t.new_pred), 0.0);
  EXPECT_NEAR(accuracy(t.y, t.new_pred) - accuracy(t.y, t.old_pred), pfr - nfr, 1e-12);
  // Swapping old and new swaps NFR and PFR.
  const FlipCounts swapped = count_flips(t.y, t.new_pred, t.old_pred);
  EXPECT_DOUBLE_EQ(negative_flip_rate(swapped), pfr);
  EXPECT_DOUBLE_EQ(positive_flip_rate(swapped), nfr);
  // Row order does not matter.
  std::vector<std::size_t> order(t.y.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(GetParam() + 99));
  Triple p;
  for (auto i : order) {
    p.y.push_back(t.y[i]);
    p.old_pred.push_back(t.old_pred[i]);
    p.new_pred.push_back(t.new_pred[i]);
  }
  const FlipCounts pc = count_flips(p.y, p.old_pred, p.new_pred);
  for (Metric m : kAllMetrics) EXPECT_EQ(metric_value(pc, m), metric_value(c, m)) << metric_name(m);
  // Unit weights equal no weights.
  const std::vector<double> ones(t.y.size(), 1.0);
  const FlipCounts wc = count_flips(t.y, t.old_pred, t.new_pred, ones);
  for (Metric m : kAllMetrics) EXPECT_EQ(metric_value(wc, m), metric_value(c, m)) << metric_name(m);
  // Per-class tables add up to the whole.
  double nf = 0;
  for (const auto& pcf : per_class_flips(t.y, t.old_pred, t.new_pred, 3)) nf += pcf.counts.negative_flips;
  EXPECT_EQ(nf, c.negative_flips);
}

INSTANTIATE_TEST_SUITE_P(Seeds, MetricProperties, ::testing::Range<std::uint64_t>(0, 20));

TEST(McNemar, HandCheckedValues) {
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(2, 1), 1.0);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(7, 7), 1.0);
  EXPECT_NEAR(mcnemar_exact_p(10, 0), 2.0 / 1024, 1e-15);
  EXPECT_NEAR(mcnemar_exact_p(5, 15), 2.0 * 21700 / 1048576, 1e-14);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(5, 15), mcnemar_exact_p(15, 5));
  // Large counts stay finite and tiny rather than underflowing to garbage.
  const double p = mcnemar_exact_p(100000, 120000);
  EXPECT_GE(p, 0.0);
  EXPECT_LT(p, 1e-30);
}

TEST(Bootstrap, IsDeterministicAndCoversTheEstimate) {
  const Triple t = random_triple(7, 2000, 2);
  BootstrapOptions options;
  options.seed = 3;
  const auto a = bootstrap_intervals(t.y, t.old_pred, t.new_pred, {}, options);
  const auto b = bootstrap_intervals(t.y, t.old_pred, t.new_pred, {}, options);
  const FlipCounts c = count_flips(t.y, t.old_pred, t.new_pred);
  for (Metric m : kAllMetrics) {
    ASSERT_TRUE(a[m]) << metric_name(m);
    EXPECT_EQ(a[m]->low, b[m]->low);
    EXPECT_EQ(a[m]->high, b[m]->high);
    EXPECT_LE(a[m]->low, *metric_value(c, m));
    EXPECT_GE(a[m]->high, *metric_value(c, m));
    EXPECT_LT(a[m]->low, a[m]->high);
  }
  // The NFR interval width is close to the normal approximation 2 * 1.96 * sqrt(p(1-p)/n).
  const double p = negative_flip_rate(c);
  const double expected = 2 * 1.96 * std::sqrt(p * (1 - p) / 2000);
  EXPECT_NEAR(a[Metric::kNfr]->high - a[Metric::kNfr]->low, expected, 0.2 * expected);
}

TEST(Bootstrap, MultinomialShortcutMatchesExampleResampling) {
  // Distinct weights force example-level resampling; with weights 1 + tiny noise the two
  // paths estimate the same distribution, so their intervals agree closely.
  const Triple t = random_triple(11, 5000, 2);
  std::vector<double> noisy(t.y.size());
  for (std::size_t i = 0; i < noisy.size(); ++i) noisy[i] = 1.0 + 1e-9 * static_cast<double>(i);
  BootstrapOptions options;
  options.resamples = 400;
  const auto fast = bootstrap_intervals(t.y, t.old_pred, t.new_pred, {}, options);
  const auto slow = bootstrap_intervals(t.y, t.old_pred, t.new_pred, noisy, options);
  for (Metric m : {Metric::kNfr, Metric::kBtc, Metric::kNewAccuracy}) {
    const double width = fast[m]->high - fast[m]->low;
    EXPECT_NEAR(fast[m]->low, slow[m]->low, 0.15 * width) << metric_name(m);
    EXPECT_NEAR(fast[m]->high, slow[m]->high, 0.15 * width) << metric_name(m);
  }
}

TEST(Bootstrap, LeavesUndefinedMetricsOut) {
  const Labels y = {0, 1, 0, 1}, perfect = y;
  const auto iv = bootstrap_intervals(y, perfect, perfect);
  EXPECT_FALSE(iv[Metric::kNfi]);  // the new model never errs in any resample
  ASSERT_TRUE(iv[Metric::kNfr]);
  EXPECT_EQ(iv[Metric::kNfr]->high, 0.0);
  EXPECT_THROW(bootstrap_intervals(y, y, y, {}, BootstrapOptions{1, 0.95, 0}), ConfigError);
}

TEST(MeanStd, FormatsLikeThePaper) {
  const std::vector<double> nfr = {0.0218, 0.0200, 0.0240, 0.0190, 0.0242};
  const MeanStd ms = mean_std(nfr);
  EXPECT_NEAR(ms.mean, 0.0218, 1e-12);
  EXPECT_EQ(format_mean_std(nfr), "2.18±0.23");
  EXPECT_EQ(format_mean_std(std::vector<double>{0.5}), "50.00±0.00");
  EXPECT_THROW(mean_std({}), InputError);
}

TEST(Summary, CollectsEverything) {
  const FlipSummary s = summarize(kY, kOld, kNew, 3);
  EXPECT_EQ(s.n, 8u);
  EXPECT_DOUBLE_EQ(*s.value(Metric::kNfr), 0.25);
  EXPECT_DOUBLE_EQ(s.mcnemar_p, 1.0);
  EXPECT_EQ(s.per_class.size(), 3u);
  EXPECT_EQ(s.intervals.by_metric.size(), kAllMetrics.size());
}

}  // namespace
}  // namespace flipless::metrics
