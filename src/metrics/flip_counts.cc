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
FlipCounts count_flips_of(std::span<const Label> y_true, std::span<const Label> old_pred,
                          std::span<const Label> new_pred, std::span<const double> weights) {
  detail::check_inputs(y_true.size(), old_pred.size(), new_pred.size(), weights);
  // Integer counts keep unweighted tables exact. Three sums (old right, new right, both right)
  // instead of a histogram: no store-to-load chain through a cell array, so the compiler
  // vectorises the loop; the four cells follow from them.
  if (weights.empty()) {
    std::uint64_t old_ok = 0, new_ok = 0, both_ok = 0;
    for (std::size_t i = 0; i < y_true.size(); ++i) {
      const std::uint64_t o = old_pred[i] == y_true[i];
      const std::uint64_t n = new_pred[i] == y_true[i];
      old_ok += o;
      new_ok += n;
      both_ok += o & n;
    }
    const std::uint64_t negative = old_ok - both_ok, positive = new_ok - both_ok;
    const std::uint64_t both_wrong = y_true.size() - both_ok - negative - positive;
    return FlipCounts{static_cast<double>(both_ok), static_cast<double>(negative), static_cast<double>(positive),
                      static_cast<double>(both_wrong)};
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
