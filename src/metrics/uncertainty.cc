#include "flipless/metrics/uncertainty.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <random>

#include "check.h"
#include "flipless/core/error.h"

namespace flipless::metrics {

namespace {

// Above this many (cell, weight) groups the multinomial shortcut stops paying off.
constexpr std::size_t kMaxGroups = 4096;

struct Group {
  unsigned cell;  // old_ok * 2 + new_ok
  double weight;
  std::uint64_t count;
};

void add_to(FlipCounts& c, unsigned cell, double amount) {
  switch (cell) {
    case 3: c.both_correct += amount; break;
    case 2: c.negative_flips += amount; break;
    case 1: c.positive_flips += amount; break;
    default: c.both_wrong += amount; break;
  }
}

// Linear-interpolation percentile (numpy's default) of sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

}  // namespace

BootstrapIntervals bootstrap_intervals(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                                       std::span<const std::int32_t> new_pred, std::span<const double> weights,
                                       const BootstrapOptions& options) {
  detail::check_inputs(y_true.size(), old_pred.size(), new_pred.size(), weights);
  if (options.resamples < 2) throw ConfigError(fmt::format("bootstrap needs at least 2 resamples, got {}", options.resamples));
  if (!(options.confidence > 0 && options.confidence < 1)) {
    throw ConfigError(fmt::format("confidence must be between 0 and 1, got {}", options.confidence));
  }
  const std::size_t n = y_true.size();
  auto cell_of = [&](std::size_t i) { return static_cast<unsigned>((old_pred[i] == y_true[i]) * 2 + (new_pred[i] == y_true[i])); };

  std::map<std::pair<unsigned, double>, std::uint64_t> grouped;
  for (std::size_t i = 0; i < n && grouped.size() <= kMaxGroups; ++i) {
    ++grouped[{cell_of(i), weights.empty() ? 1.0 : weights[i]}];
  }
  const bool multinomial = grouped.size() <= kMaxGroups;
  std::vector<Group> groups;
  for (const auto& [key, count] : grouped) groups.push_back({key.first, key.second, count});

  std::mt19937_64 rng(options.seed);
  std::vector<std::vector<double>> samples(kAllMetrics.size());
  for (auto& s : samples) s.reserve(static_cast<std::size_t>(options.resamples));
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  for (int r = 0; r < options.resamples; ++r) {
    FlipCounts c;
    if (multinomial) {
      // Sequential binomials: group g gets Binomial(left, p_g / p_left) of the draws left.
      std::uint64_t left = n;
      double p_left = 1.0;
      for (std::size_t g = 0; g < groups.size() && left > 0; ++g) {
        const double p = static_cast<double>(groups[g].count) / static_cast<double>(n);
        std::uint64_t k = left;
        if (g + 1 < groups.size()) {
          const double q = std::clamp(p / p_left, 0.0, 1.0);
          std::binomial_distribution<std::uint64_t> draw(left, q);
          k = draw(rng);
        }
        add_to(c, groups[g].cell, static_cast<double>(k) * groups[g].weight);
        left -= k;
        p_left -= p;
      }
    } else {
      for (std::size_t j = 0; j < n; ++j) {
        const std::size_t i = pick(rng);
        add_to(c, cell_of(i), weights[i]);
      }
    }
    for (std::size_t m = 0; m < kAllMetrics.size(); ++m) {
      if (auto v = metric_value(c, kAllMetrics[m])) samples[m].push_back(*v);
    }
  }
  BootstrapIntervals out;
  const double alpha = 1.0 - options.confidence;
  for (auto& s : samples) {
    if (s.empty()) {
      out.by_metric.emplace_back(std::nullopt);
      continue;
    }
    std::sort(s.begin(), s.end());
    out.by_metric.emplace_back(Interval{percentile(s, alpha / 2), percentile(s, 1 - alpha / 2)});
  }
  return out;
}

double mcnemar_exact_p(std::uint64_t negative_flips, std::uint64_t positive_flips) {
  const std::uint64_t m = negative_flips + positive_flips;
  if (m == 0) return 1.0;
  const std::uint64_t k = std::min(negative_flips, positive_flips);
  const double md = static_cast<double>(m);
  const double log_norm = std::lgamma(md + 1) - md * std::log(2.0);
  auto log_pmf = [&](std::uint64_t i) {
    const double id = static_cast<double>(i);
    return log_norm - std::lgamma(id + 1) - std::lgamma(md - id + 1);
  };
  // Terms grow up to i = k <= m/2: sum relative to the largest for stability.
  const double top = log_pmf(k);
  double sum = 0.0;
  for (std::uint64_t i = k + 1; i-- > 0;) {
    const double term = std::exp(log_pmf(i) - top);
    sum += term;
    if (term < 1e-18) break;
  }
  const double p = 2.0 * std::exp(top) * sum;
  return std::min(1.0, p);
}

MeanStd mean_std(std::span<const double> values) {
  if (values.empty()) throw InputError("mean and std of no values");
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  const double sd = values.size() > 1 ? std::sqrt(ss / static_cast<double>(values.size() - 1)) : 0.0;
  return {mean, sd};
}

std::string format_mean_std(std::span<const double> fractions, int decimals) {
  const MeanStd ms = mean_std(fractions);
  return fmt::format("{:.{}f}±{:.{}f}", 100 * ms.mean, decimals, 100 * ms.std, decimals);
}

}  // namespace flipless::metrics
