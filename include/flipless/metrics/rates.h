#pragma once
// Regression metrics as fractions in [0, 1]. Each takes a flip table (flip_counts.h) or label
// arrays (truth, old, new). An undefined ratio (a zero denominator) is std::nullopt, never 0;
// empty input throws InputError.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "flipless/metrics/flip_counts.h"

namespace flipless::metrics {

// Every scalar metric of an old/new pair, by name.
enum class Metric {
  kOldAccuracy,    // old correct / n
  kNewAccuracy,    // new correct / n
  kAccuracyDelta,  // new accuracy - old accuracy (= PFR - NFR)
  kNfr,            // negative flips / n
  kPfr,            // positive flips / n
  kNfi,            // negative flips / new errors
  kBtc,            // both correct / old correct
  kBec,            // both wrong / new errors
};

inline constexpr std::array<Metric, 8> kAllMetrics = {Metric::kOldAccuracy, Metric::kNewAccuracy, Metric::kAccuracyDelta,
                                                      Metric::kNfr,         Metric::kPfr,         Metric::kNfi,
                                                      Metric::kBtc,         Metric::kBec};

// Short machine name ("nfr", "old_accuracy", ...), used in JSON and by --fail-if.
std::string_view metric_name(Metric metric);
// Human label ("NFR", "old accuracy", ...).
std::string_view metric_label(Metric metric);
// Looks a metric up by its short name or a common alias ("acc_new", "negative_flip_rate"); nullopt if none.
std::optional<Metric> metric_from_name(std::string_view name);

// The value of `metric` on a flip table; nullopt when undefined.
std::optional<double> metric_value(const FlipCounts& counts, Metric metric);

// Accuracy of one model (fraction correct). Throws InputError on empty input.
double accuracy(std::span<const std::int32_t> y_true, std::span<const std::int32_t> pred,
                std::span<const double> weights = {});

// Negative flip rate: old right and new wrong, over all examples (the paper's NFR).
double negative_flip_rate(const FlipCounts& counts);
double negative_flip_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                          std::span<const std::int32_t> new_pred, std::span<const double> weights = {});
// Positive flip rate: old wrong and new right, over all examples.
double positive_flip_rate(const FlipCounts& counts);
double positive_flip_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                          std::span<const std::int32_t> new_pred, std::span<const double> weights = {});
// Negative flip impact: negative flips over the new model's errors; undefined with no new error.
std::optional<double> negative_flip_impact(const FlipCounts& counts);
// Backward trust compatibility: both correct over old correct (Bansal et al. 2019);
// undefined when the old model is never right. Equals BackwardCompatibilityML's
// trust_compatibility_score wherever that is defined.
std::optional<double> backward_trust_compatibility(const FlipCounts& counts);
// Backward error compatibility: both wrong over the new model's errors, the share of the new
// model's mistakes that are not new (Srivastava et al. 2020); undefined with no new error.
// BackwardCompatibilityML's error_compatibility_score divides by the OLD model's errors
// instead, against its own documentation; see docs/metrics.md.
std::optional<double> backward_error_compatibility(const FlipCounts& counts);

// Fix rate (SPEC.md section 5.5): the share of a reference new model's negative flips that the
// candidate does not have. Undefined when the reference has no negative flip.
std::optional<double> fix_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                               std::span<const std::int32_t> reference_pred, std::span<const std::int32_t> candidate_pred);
// New fault rate (SPEC.md section 5.5): the candidate's negative flips that the reference did not
// have, over the reference's negative-flip count. Undefined when the reference has none.
std::optional<double> new_fault_rate(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                                     std::span<const std::int32_t> reference_pred, std::span<const std::int32_t> candidate_pred);

// Relative flip reduction of a candidate against a reference: (ref - cand) / ref, e.g. the
// paper's "relative NF reduction" from two NFRs. Undefined when the reference is 0.
std::optional<double> relative_flip_reduction(double reference_nfr, double candidate_nfr);

}  // namespace flipless::metrics
