#include "flipless/metrics/summary.h"

#include <cmath>

namespace flipless::metrics {

FlipSummary summarize(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                      std::span<const std::int32_t> new_pred, std::size_t num_labels, std::span<const double> weights,
                      const BootstrapOptions& bootstrap) {
  FlipSummary s;
  s.counts = count_flips(y_true, old_pred, new_pred, weights);
  s.n = y_true.size();
  s.weighted = !weights.empty();
  for (Metric m : kAllMetrics) s.values.push_back(metric_value(s.counts, m));
  s.intervals = bootstrap_intervals(y_true, old_pred, new_pred, weights, bootstrap);
  const FlipCounts plain = s.weighted ? count_flips(y_true, old_pred, new_pred) : s.counts;
  s.mcnemar_p = mcnemar_exact_p(static_cast<std::uint64_t>(std::llround(plain.negative_flips)),
                                static_cast<std::uint64_t>(std::llround(plain.positive_flips)));
  s.per_class = per_class_flips(y_true, old_pred, new_pred, num_labels, weights);
  return s;
}

}  // namespace flipless::metrics
