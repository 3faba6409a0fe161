#include "flipless/metrics/rates.h"

#include <fmt/format.h>

#include "flipless/core/assert.h"
#include "flipless/core/error.h"
#include "check.h"

namespace flipless::metrics {

namespace {
std::optional<double> ratio(double num, double den) {
  if (den <= 0) return std::nullopt;
  return num / den;
}
double total_or_throw(const FlipCounts& c) {
  const double n = c.total();
  if (n <= 0) throw InputError("no examples (or zero total weight): rates are undefined");
  return n;
}
}  // namespace

std::string_view metric_name(Metric metric) {
  switch (metric) {
    case Metric::kOldAccuracy: return "old_accuracy";
    case Metric::kNewAccuracy: return "new_accuracy";
    case Metric::kAccuracyDelta: return "accuracy_delta";
    case Metric::kNfr: return "nfr";
    case Metric::kPfr: return "pfr";
    case Metric::kNfi: return "nfi";
    case Metric::kBtc: return "btc";
    case Metric::kBec: return "bec";
  }
  FLIPLESS_ASSERT(false, "unhandled metric");
}

std::string_view metric_label(Metric metric) {
  switch (metric) {
    case Metric::kOldAccuracy: return "old accuracy";
    case Metric::kNewAccuracy: return "new accuracy";
    case Metric::kAccuracyDelta: return "accuracy change";
    case Metric::kNfr: return "NFR";
    case Metric::kPfr: return "PFR";
    case Metric::kNfi: return "NFI";
    case Metric::kBtc: return "BTC";
    case Metric::kBec: return "BEC";
  }
  FLIPLESS_ASSERT(false, "unhandled metric");
}

std::optional<Metric> metric_from_name(std::string_view name) {
  for (Metric m : kAllMetrics) {
    if (metric_name(m) == name) return m;
  }
  struct Alias {
    std::string_view name;
    Metric metric;
  };
  static constexpr Alias kAliases[] = {
      {"acc_old", Metric::kOldAccuracy}, {"acc_new", Metric::kNewAccuracy}, {"old_acc", Metric::kOldAccuracy},
      {"new_acc", Metric::kNewAccuracy}, {"accuracy", Metric::kNewAccuracy}, {"acc_delta", Metric::kAccuracyDelta},
      {"delta_accuracy", Metric::kAccuracyDelta}, {"negative_flip_rate", Metric::kNfr},
      {"positive_flip_rate", Metric::kPfr},     {"negative_flip_impact", Metric::kNfi},
      {"backward_trust_compatibility", Metric::kBtc}, {"backward_error_compatibility", Metric::kBec},
  };
  for (const auto& alias : kAliases) {
    if (alias.name == name) return alias.metric;
  }
  return std::nullopt;
}

std::optional<double> metric_value(const FlipCounts& c, Metric metric) {
  const double n = c.total();
  switch (metric) {
    case Metric::kOldAccuracy: return ratio(c.old_correct(), n);
    case Metric::kNewAccuracy: return ratio(c.new_correct(), n);
    case Metric::kAccuracyDelta:
      if (n <= 0) return std::nullopt;
      return (c.new_correct() - c.old_correct()) / n;
    case Metric::kNfr: return ratio(c.negative_flips, n);
    case Metric::kPfr: return ratio(c.positive_flips, n);
    case Metric::kNfi: return negative_flip_impact(c);
    case Metric::kBtc: return backward_trust_compatibility(c);
    case Metric::kBec: return backward_error_compatibility(c);
  }
  FLIPLESS_ASSERT(false, "unhandled metric");
}

double accuracy(std::span<const std::int32_t> y_true, std::span<const std::int32_t> pred, std::span<const double> weights) {
  detail::check_inputs(y_true.size(), pred.size(), pred.size(), weights);
  double correct = 0, total = 0;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    total += w;
    if (pred[i] == y_true[i]) correct += w;
  }
  if (total <= 0) throw InputError("zero total weight: accuracy is undefined");
  return correct / total;
}

double negative_flip_rate(const FlipCounts& c) { return c.negative_flips / total_or_throw(c); }
double positive_flip_rate(const FlipCounts& c) { return c.positive_flips / total_or_throw(c); }

double negative_flip_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                          std::span<const std::int32_t> new_pred, std::span<const double> weights) {
  return negative_flip_rate(count_flips(y_true, old_pred, new_pred, weights));
}

double positive_flip_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                          std::span<const std::int32_t> new_pred, std::span<const double> weights) {
  return positive_flip_rate(count_flips(y_true, old_pred, new_pred, weights));
}

std::optional<double> negative_flip_impact(const FlipCounts& c) { return ratio(c.negative_flips, c.new_errors()); }
std::optional<double> backward_trust_compatibility(const FlipCounts& c) { return ratio(c.both_correct, c.old_correct()); }
std::optional<double> backward_error_compatibility(const FlipCounts& c) { return ratio(c.both_wrong, c.new_errors()); }

namespace {
// (reference NFs, candidate NFs not in reference, reference NFs the candidate fixes)
struct FaultCounts {
  std::size_t reference_nf = 0, new_faults = 0, fixed = 0;
};
FaultCounts count_faults(std::span<const std::int32_t> y, std::span<const std::int32_t> old_pred,
                         std::span<const std::int32_t> ref, std::span<const std::int32_t> cand) {
  detail::check_inputs(y.size(), old_pred.size(), ref.size(), {});
  if (cand.size() != y.size()) throw InputError(fmt::format("candidate has {} labels, truth {}", cand.size(), y.size()));
  FaultCounts f;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const bool old_ok = old_pred[i] == y[i];
    const bool ref_nf = old_ok && ref[i] != y[i];
    const bool cand_nf = old_ok && cand[i] != y[i];
    f.reference_nf += ref_nf;
    f.fixed += ref_nf && !cand_nf;
    f.new_faults += cand_nf && !ref_nf;
  }
  return f;
}
}  // namespace

std::optional<double> fix_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                               std::span<const std::int32_t> reference_pred, std::span<const std::int32_t> candidate_pred) {
  const FaultCounts f = count_faults(y_true, old_pred, reference_pred, candidate_pred);
  return ratio(static_cast<double>(f.fixed), static_cast<double>(f.reference_nf));
}

std::optional<double> new_fault_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                                     std::span<const std::int32_t> reference_pred,
                                     std::span<const std::int32_t> candidate_pred) {
  const FaultCounts f = count_faults(y_true, old_pred, reference_pred, candidate_pred);
  return ratio(static_cast<double>(f.new_faults), static_cast<double>(f.reference_nf));
}

std::optional<double> relative_flip_reduction(double reference_nfr, double candidate_nfr) {
  if (reference_nfr <= 0) return std::nullopt;
  return (reference_nfr - candidate_nfr) / reference_nfr;
}

}  // namespace flipless::metrics
