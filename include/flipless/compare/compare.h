#pragma once
// Comparing two classifiers from their prediction files alone: joining by example id,
// resolving labels, and computing every flip metric with its uncertainty, per class and per
// slice. No model is loaded and nothing here depends on libtorch.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "flipless/data/example.h"
#include "flipless/data/predictions.h"
#include "flipless/metrics/summary.h"

namespace flipless::compare {

struct CompareOptions {
  std::vector<std::string> label_names;  // label set when no dataset gives one; empty: inferred
  metrics::BootstrapOptions bootstrap;   // 1000 resamples, 95%, seed 0
  std::size_t top_k = 10;                // negative flips listed in the report
  bool unknown_preds_wrong = false;      // a predicted label outside the task's set: false an
                                         // error naming it and its line; true counted as wrong
};

// One example shown in the report.
struct FlipExample {
  std::string id;
  std::int32_t label = 0;
  std::int32_t old_pred = 0;
  std::int32_t new_pred = 0;
  std::optional<float> old_confidence;  // max probability of the old model, when it gave scores
  std::optional<float> new_confidence;
  std::string text_a;                   // empty when no dataset was given
  std::optional<std::string> text_b;
};

// Flips within one slice of the examples (a length bucket, a confidence bin).
struct SliceFlips {
  std::string name;
  metrics::FlipCounts counts;
};

struct Comparison {
  std::string old_source;
  std::string new_source;
  std::string labels_from;               // where the true labels came from
  std::vector<std::string> label_names;  // label id -> name
  std::vector<std::string> ids;          // (n,) in the old file's order
  std::vector<std::int32_t> y_true;      // (n,)
  std::vector<std::int32_t> old_pred;    // (n,)
  std::vector<std::int32_t> new_pred;    // (n,)
  metrics::FlipSummary summary;
  std::vector<FlipExample> top_negative_flips;  // most confident old predictions first
  std::vector<SliceFlips> by_length;            // words per input; empty without texts
  std::vector<SliceFlips> by_old_confidence;    // empty when the old file has no scores
};

// Compares two prediction files. True labels come from `dataset` when given (every prediction
// id must be one of its examples and every example must have a prediction), else from the
// files' label fields. Missing, extra or duplicate ids and labels that disagree throw
// InputError naming the file and line.
Comparison compare_predictions(const data::PredictionFile& old_file, const data::PredictionFile& new_file,
                               const data::Dataset* dataset, const CompareOptions& options = {});

// A check on one metric for CI pipelines: "nfr>0.02", "new_accuracy<=0.9", "btc<0.95".
struct Gate {
  metrics::Metric metric;
  std::string op;  // one of > >= < <=
  double threshold;
  std::string text;  // as written
};

// Parses a gate; throws ConfigError naming the known metrics on a bad one.
Gate parse_gate(std::string_view text);

// True when the gate's condition holds (the check fails). Throws InputError when the metric is
// undefined for this comparison.
bool gate_crossed(const Gate& gate, const metrics::FlipSummary& summary);

}  // namespace flipless::compare
