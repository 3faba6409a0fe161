#pragma once
// The paper's table 5 (SPEC.md, "Inference with a cache"), and ways past its gap: Gated Fusion
// served from an OldLogitCache that holds the old logits of a random X% of the eval inputs.
// The other inputs take one of three policies:
//
//   neighbour       the paper's: the nearest cached input's old logits (Euclidean on the new
//                   model's pooled embedding), however far it is
//   new_on_miss     the new model alone (what serving does without a neighbour)
//   tuned_distance  the neighbour when it is within a distance threshold, else the new model
//                   alone; the threshold is chosen on the validation split with a validation
//                   cache of the same X%, by the experiment's selection rule
//   emulator        an old-model emulator (cache/old_emulator.h: ridge regression from the new
//                   model's pooled embedding to the old logits) fitted on the cached rows only,
//                   for every input not cached exactly; the new model alone when fewer than
//                   kMinEmulatorRows are cached
//
// Every gated method's units run it (the paper's Gated Fusion and the flipless variants). A gate
// that also reads the two models' probabilities (gated_fusion_confidence, gated_fusion_heldout
// with confidence=1) is re-evaluated, as flipless serve does, on the old logits each policy
// hands an input that is not cached exactly: the inputs' own gate values hold only where the
// input's own old logits are used.
//
// Everything goes through the real cache (an in-memory SQLite OldLogitCache, its exact index
// at these sizes), from a Gated Fusion unit's saved arrays, so it needs no model.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "flipless/experiment/config.h"

namespace flipless::experiment {

// One split of a Gated Fusion unit, row-major.
struct FusionArrays {
  std::vector<std::int32_t> labels;  // (n,)
  std::size_t num_labels = 0, dim = 0;
  std::vector<float> old_logits;     // (n, k) the old model's
  std::vector<float> new_logits;     // (n, k) the GF-trained new model alone
  std::vector<float> gates;          // (n,) a(x)
  std::vector<float> embeddings;     // (n, dim) the new model's pooled embedding (the cache key space)
  std::size_t size() const { return labels.size(); }
  void validate(const char* what) const;  // throws InputError on inconsistent shapes
};

struct CacheExperimentInputs {
  FusionArrays validation, dev;
  double temperature = 1;                   // GF's T
  double reference_validation_accuracy = 0; // vanilla's, for the selection rule
  double tolerance = 0.001;
  std::uint64_t seed = 0;                   // the unit's seed; cache draws derive from it
  // For a gate that reads the probabilities: a(x) of every row of `split` fused with
  // `old_logits` (n, k) in place of its own. Empty for the paper's gate (embedding only): the
  // saved gates hold for any old logits.
  std::function<std::vector<float>(const FusionArrays& split, const std::vector<float>& old_logits)> gate_of;
};

// Runs every X of `config` with config.draws random caches each. Returns
//   {"temperature": T, "policies": [names], "percents": [{"percent": X, "max_distance": tau (null: none),
//     "draws": [{"cached": m, "near_hits": h, "neighbour_agreement": a, "new_model_agreement": b,
//                "emulator_agreement": c, "emulator": {"rows", "relative_lambda", "held_out_mse",
//                "held_out_agreement"}, "policies": {"neighbour": {"nfr", "accuracy"},
//                "new_on_miss": {...}, "tuned_distance": {...}, "emulator": {...}}}]}]}
// where a is the share of near hits whose neighbour's old label is the input's own old label
// (how much a neighbour tells about the old model), b the same for the new model alone and c
// for the emulator; rates as fractions. "policies" lists the policies this version computes
// (a cache.json without one of them is recomputed by the runner).
inline constexpr const char* kCachePolicies[] = {"neighbour", "new_on_miss", "tuned_distance", "emulator"};
nlohmann::json run_cache_experiment(const CacheExperimentInputs& inputs, const CacheExperimentConfig& config);

}  // namespace flipless::experiment
