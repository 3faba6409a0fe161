#pragma once
// Old-new ensembles (the paper's baselines; SPEC.md "Baselines" 4): p = (1 - a) p_old + a p_new
// on probabilities, or l = (1 - a) l_old + a l_new on logits, with a chosen on a selection set
// (the validation split carved from train, never dev) for the lowest NFR among the settings
// whose accuracy is on par with the new model alone. Torch-free: it works on stored logits.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace flipless::ensemble {

enum class Kind { kProbabilities, kLogits };

// Combined scores (rows, k), row-major: probabilities for kProbabilities, logits for kLogits.
std::vector<float> combine(std::span<const float> old_logits, std::span<const float> new_logits, std::size_t num_labels, Kind kind,
                           double alpha);

struct Candidate {
  double alpha = 0;
  double accuracy = 0;
  double nfr = 0;
  bool on_par = false;  // accuracy >= the new model's accuracy - tolerance
};

struct Choice {
  double alpha = 0;
  std::vector<Candidate> candidates;  // one per grid value, in grid order
  double new_model_accuracy = 0;
  bool fallback = false;  // no candidate was on par: the most accurate one was taken
};

// Picks alpha from `grid` on a selection set. Among candidates with accuracy >= new-model
// accuracy - tolerance, the lowest NFR wins (ties: the larger alpha, closer to the new model);
// if none qualifies, the most accurate. Throws InputError on mismatched or empty input.
Choice choose_alpha(std::span<const std::int32_t> y_true, std::span<const float> old_logits, std::span<const float> new_logits,
                    std::size_t num_labels, Kind kind, const std::vector<double>& grid = {0.5, 0.6, 0.7, 0.8, 0.9},
                    double tolerance = 0.001);

// New-model ensemble (SPEC.md "Baselines" 3): the majority vote of several new models (k seeds),
// ties broken by the highest mean probability.
struct Vote {
  std::vector<std::int32_t> labels;  // (rows,)
  std::vector<float> mean_probs;     // (rows, k)
};

// `logits` holds one (rows, k) array per model. Throws InputError on fewer than 2 models or
// mismatched shapes.
Vote majority_vote(const std::vector<std::vector<float>>& logits, std::size_t num_labels);

}  // namespace flipless::ensemble
