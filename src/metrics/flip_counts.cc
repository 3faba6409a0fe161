#include "flipless/metrics/flip_counts.h"

#include <cmath>
#include <fmt/format.h>

#include "flipless/core/error.h"
#include "check.h"

namespace flipless::metrics {

namespace detail {
void check_inputs(std::size_t n_true, std::size_t n_old, std::size_t n_new, std::span<const double> weights) {
  if (n_true == 0) throw InputError("no examples: flip metrics need at least one");
  if (n_old != n_true || n_new != n_true) {
    throw InputError(fmt::format("label arrays differ in length: truth {}, old {}, new {}", n_true, n_old, n_new));
  }
  if (!weights.empty()) {
    if (weights.size() != n_true) {
      throw InputError(fmt::format("weights have length {}, labels {}", weights.size(), n_true));
    }
    for (std::size_t i = 0; i < weights.size(); ++i) {
      if (!std::isfinite(weights[i]) || weights[i] < 0) {
        throw InputError(fmt::format("weight {} of example {} is not a finite number >= 0", weights[i], i));
      }
    }
  }
}
}  // namespace detail

namespace {

template <typename Label>
FlipCounts count_flips_of(std::span<const Label> y_true, std::span<const Label> old_pred, std::span<const Label> new_pred,
                          std::span<const double> weights) {
  detail::check_inputs(y_true.size(), old_pred.size(), new_pred.size(), weights);
  // Integer counting per cell keeps unweighted counts exact and the loop branch-free.
  if (weights.empty()) {
    std::uint64_t cells[4] = {0, 0, 0, 0};
    for (std::size_t i = 0; i < y_true.size(); ++i) {
      const unsigned old_ok = old_pred[i] == y_true[i];
      const unsigned new_ok = new_pred[i] == y_true[i];
      ++cells[old_ok * 2 + new_ok];
    }
    return FlipCounts{static_cast<double>(cells[3]), static_cast<double>(cells[2]), static_cast<double>(cells[1]),
                      static_cast<double>(cells[0])};
  }
  double cells[4] = {0, 0, 0, 0};
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const unsigned old_ok = old_pred[i] == y_true[i];
    const unsigned new_ok = new_pred[i] == y_true[i];
    cells[old_ok * 2 + new_ok] += weights[i];
  }
  return FlipCounts{cells[3], cells[2], cells[1], cells[0]};
}

}  // namespace

FlipCounts count_flips(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                       std::span<const std::int32_t> new_pred, std::span<const double> weights) {
  return count_flips_of(y_true, old_pred, new_pred, weights);
}

FlipCounts count_flips(std::span<const std::int64_t> y_true, std::span<const std::int64_t> old_pred,
                       std::span<const std::int64_t> new_pred, std::span<const double> weights) {
  return count_flips_of(y_true, old_pred, new_pred, weights);
}

std::vector<ClassFlips> per_class_flips(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                                        std::span<const std::int32_t> new_pred, std::size_t num_labels,
                                        std::span<const double> weights) {
  detail::check_inputs(y_true.size(), old_pred.size(), new_pred.size(), weights);
  std::vector<ClassFlips> out(num_labels);
  for (std::size_t k = 0; k < num_labels; ++k) out[k].label = static_cast<std::int32_t>(k);
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const std::int32_t y = y_true[i];
    if (y < 0 || static_cast<std::size_t>(y) >= num_labels) {
      throw InputError(fmt::format("true label {} of example {} is outside 0..{}", y, i, num_labels - 1));
    }
    const double w = weights.empty() ? 1.0 : weights[i];
    FlipCounts& c = out[static_cast<std::size_t>(y)].counts;
    const bool old_ok = old_pred[i] == y, new_ok = new_pred[i] == y;
    (old_ok ? (new_ok ? c.both_correct : c.negative_flips) : (new_ok ? c.positive_flips : c.both_wrong)) += w;
  }
  return out;
}

std::vector<std::int32_t> labels_from_scores(std::span<const float> scores, std::size_t num_labels) {
  if (num_labels == 0 || scores.size() % num_labels != 0) {
    throw InputError(fmt::format("{} scores do not form rows of {} labels", scores.size(), num_labels));
  }
  const std::size_t n = scores.size() / num_labels;
  std::vector<std::int32_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = scores.data() + i * num_labels;
    std::size_t best = 0;
    for (std::size_t k = 1; k < num_labels; ++k) {
      if (row[k] > row[best]) best = k;
    }
    out[i] = static_cast<std::int32_t>(best);
  }
  return out;
}

}  // namespace flipless::metrics
