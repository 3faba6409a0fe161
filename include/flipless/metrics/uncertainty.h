#pragma once
// Uncertainty of flip metrics: paired bootstrap intervals over examples, McNemar's exact test,
// and mean +- std over seeds in the paper's format.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flipless/metrics/rates.h"

namespace flipless::metrics {

struct BootstrapOptions {
  int resamples = 1000;     // number of bootstrap resamples
  double confidence = 0.95; // two-sided percentile interval
  std::uint64_t seed = 0;   // same seed, same intervals
};

struct Interval {
  double low = 0;
  double high = 0;
};

// One interval per metric in kAllMetrics order; nullopt where the metric is undefined in every
// resample.
struct BootstrapIntervals {
  std::vector<std::optional<Interval>> by_metric;
  const std::optional<Interval>& operator[](Metric m) const { return by_metric[static_cast<std::size_t>(m)]; }
};

// Paired bootstrap over examples: each resample draws n examples with replacement, keeping each
// example's (truth, old, new, weight) together. Every metric depends only on the counts of
// examples per (flip cell, weight) group, so a resample is drawn as one multinomial over those
// groups; that is exactly the example-level bootstrap and costs O(groups), not O(n), per
// resample. With many distinct weights it falls back to resampling examples. Metrics undefined
// in a resample are left out of that metric's interval.
BootstrapIntervals bootstrap_intervals(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                                       std::span<const std::int32_t> new_pred, std::span<const double> weights = {},
                                       const BootstrapOptions& options = {});

// Two-sided exact McNemar test on the discordant pairs: `negative_flips` (old right, new wrong)
// against `positive_flips` (old wrong, new right). The p-value is 2 * P[X <= min(b, c)] for
// X ~ Binomial(b + c, 1/2), capped at 1; 1 when there is no discordant pair.
double mcnemar_exact_p(std::uint64_t negative_flips, std::uint64_t positive_flips);

struct MeanStd {
  double mean = 0;
  double std = 0;  // sample standard deviation (n - 1); 0 for a single value
};

// Mean and sample standard deviation of per-seed values. Throws InputError on empty input.
MeanStd mean_std(std::span<const double> values);

// "2.18±0.21": mean ± std of fractions shown as percentages with `decimals` places, as in the
// paper's tables.
std::string format_mean_std(std::span<const double> fractions, int decimals = 2);

}  // namespace flipless::metrics
