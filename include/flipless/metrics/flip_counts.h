#pragma once
// Counting flips between an old and a new classifier. Everything here is a pure function over
// label arrays of the same length n, in the argument order truth, old, new.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace flipless::metrics {

// The 2x2 flip table: examples (or their total weight) by old-correct x new-correct.
struct FlipCounts {
  double both_correct = 0;    // old right, new right
  double negative_flips = 0;  // old right, new wrong
  double positive_flips = 0;  // old wrong, new right
  double both_wrong = 0;      // old wrong, new wrong (not necessarily the same wrong label)

  double total() const { return both_correct + negative_flips + positive_flips + both_wrong; }
  double old_correct() const { return both_correct + negative_flips; }
  double new_correct() const { return both_correct + positive_flips; }
  double old_errors() const { return positive_flips + both_wrong; }
  double new_errors() const { return negative_flips + both_wrong; }
};

// Counts the flip table. `weights` (optional, shape (n,), each finite and >= 0) makes every
// count a sum of weights (cost-weighted rates). Throws InputError for empty or mismatched
// inputs and for bad weights.
FlipCounts count_flips(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                       std::span<const std::int32_t> new_pred, std::span<const double> weights = {});
// The same over 64-bit labels (NumPy's and libtorch's default integer), so such arrays are
// counted where they lie instead of being narrowed into a copy first.
FlipCounts count_flips(std::span<const std::int64_t> y_true, std::span<const std::int64_t> old_pred,
                       std::span<const std::int64_t> new_pred, std::span<const double> weights = {});

// Flips within one true class.
struct ClassFlips {
  std::int32_t label = 0;
  FlipCounts counts;  // over the examples whose true label is `label`
};

// Flip tables per true class, for classes 0..num_labels-1 (shape (num_labels,)). Labels outside
// that range throw InputError.
std::vector<ClassFlips> per_class_flips(std::span<const std::int32_t> y_true, std::span<const std::int32_t> old_pred,
                                        std::span<const std::int32_t> new_pred, std::size_t num_labels,
                                        std::span<const double> weights = {});

// Predicted labels from row-major scores (probabilities or logits) of shape (n, num_labels):
// the argmax of each row, the lowest index on ties. Throws InputError when the size is not a
// multiple of num_labels.
std::vector<std::int32_t> labels_from_scores(std::span<const float> scores, std::size_t num_labels);

}  // namespace flipless::metrics
