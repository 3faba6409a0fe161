#pragma once
// Everything about an old/new pair in one value: the flip table, every metric with its
// bootstrap interval, McNemar's test and per-class flips.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "flipless/metrics/flip_counts.h"
#include "flipless/metrics/rates.h"
#include "flipless/metrics/uncertainty.h"

namespace flipless::metrics {

struct FlipSummary {
  std::size_t n = 0;
  bool weighted = false;
  FlipCounts counts;
  std::vector<std::optional<double>> values;  // kAllMetrics order
  BootstrapIntervals intervals;
  double mcnemar_p = 1.0;                    // on unweighted counts
  std::vector<ClassFlips> per_class;         // (num_labels,)

  const std::optional<double>& value(Metric m) const { return values[static_cast<std::size_t>(m)]; }
};

// Summarises an old/new pair. Throws InputError on empty or mismatched input.
FlipSummary summarize(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                      std::span<const std::int32_t> new_pred, std::size_t num_labels,
                      std::span<const double> weights = {}, const BootstrapOptions& bootstrap = {});

}  // namespace flipless::metrics
