#pragma once
// CompatiblePredictor: serving Gated Fusion without hosting the old model (SPEC.md, "Inference
// with a cache"). For each input the new model gives logits, its pooled embedding and the gate
// a(x); the old logits come from the OldLogitCache:
//
//   exact hit  -> the cached old logits of the same (normalised) input
//   near hit   -> the nearest cached input's old logits (Euclidean on the new embedding), when
//                 within LookupOptions::max_distance
//   emulated   -> with the "emulator" fallback (the default when the model folder holds an
//                 old_emulator.safetensors, `flipless cache fit-emulator`): every input not
//                 cached exactly gets the old-model emulator's logits (cache/old_emulator.h); no
//                 neighbour look-ups. In the table-5 experiment on fine-tuned upgrades this kept
//                 more of Gated Fusion's reduction than the nearest neighbour (RESULTS.md)
//   miss       -> a live old model when one is configured ("live_old"), else the new model
//                 alone (gate forced to 1)
//   fused      =  (1 - a) * old_logits / T + a * new_logits
//
// Optionally each served prediction is recorded into the cache as the next legacy version, so
// a later upgrade stays compatible with what users saw.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flipless/cache/logit_cache.h"
#include "flipless/data/example.h"
#include "flipless/models/classifier.h"

namespace flipless::serve {

struct PredictorOptions {
  cache::LookupOptions lookup;  // version (empty: the latest at load time), nearest, max_distance
  std::string record_version;   // non-empty: record served fused logits into the cache under this tag
  std::string device = "cpu";   // where the new model runs (cpu, cuda, cuda:N, auto); the gate runs on the CPU
  std::string precision = "fp32";  // fp32, bf16, fp16 (GPU)
  // What an input not cached exactly gets: "emulator" (the model folder's old-model emulator),
  // "neighbour" (the nearest cached input within lookup.max_distance, as the paper), "new" (no
  // neighbours: the new model alone, or the live old model), or "auto": emulator when the folder
  // has one, else neighbour. A live old model, when given, answers what the policy leaves as a miss.
  std::string fallback = "auto";
};

// The old-model emulator's file in a Gated Fusion model folder.
inline constexpr const char* kEmulatorFileName = "old_emulator.safetensors";

enum class PredictionPath { kExact, kNear, kMiss, kLiveOld, kEmulated };
inline constexpr std::size_t kNumPredictionPaths = 5;
// "exact", "near", "miss", "live_old", "emulated".
std::string_view path_name(PredictionPath path);

struct Prediction {
  std::int32_t label = 0;            // argmax of logits
  std::vector<float> logits;         // (num_labels,) the fused logits served
  std::vector<float> probabilities;  // (num_labels,) softmax of logits
  float gate = 1;                    // a(x), the new model's weight; 1 on a miss
  PredictionPath path = PredictionPath::kMiss;
  float distance = 0;                // to the cached neighbour on a near hit
};

class CompatiblePredictor {
 public:
  // Loads a Gated Fusion model folder (`flipless train --method gated_fusion --out DIR`, or an
  // experiment's gated_fusion/seed-S/model): the new model, gate.safetensors and T from the
  // card. `cache` may be null (then every input misses); `live_old` may be null.
  // Throws ModelError for a folder without a gate, whose card's max_length exceeds the
  // encoder's positions, or whose emulator is damaged or fitted in another embedding space;
  // ConfigError for a cache of another width, an unknown fallback, or "emulator" without one.
  static std::unique_ptr<CompatiblePredictor> load(const std::filesystem::path& model_dir, std::shared_ptr<cache::OldLogitCache> cache,
                                                   std::shared_ptr<const models::Classifier> live_old, PredictorOptions options);
  // With default options. (An overload rather than a default argument: GCC 12 warns of a
  // maybe-uninitialised string in a defaulted options struct built at each call site.)
  static std::unique_ptr<CompatiblePredictor> load(const std::filesystem::path& model_dir, std::shared_ptr<cache::OldLogitCache> cache,
                                                   std::shared_ptr<const models::Classifier> live_old);
  ~CompatiblePredictor();
  CompatiblePredictor(const CompatiblePredictor&) = delete;
  CompatiblePredictor& operator=(const CompatiblePredictor&) = delete;

  // One prediction per example, in order. Thread-safe.
  std::vector<Prediction> predict(std::span<const data::TextExample> examples) const;

  // Runs the model and the gate once on a dummy input (no cache, no recording), so the first
  // request does not pay for lazy initialisation.
  void warm_up() const;

  const std::vector<std::string>& label_names() const;
  std::size_t num_labels() const;
  double temperature() const;
  // The embedding space of the new model ("frozen:minilm-l6:L6:mean", "model:<hash>"); cache
  // versions stored in another space are used for exact look-ups only.
  const std::string& embedding_space() const;
  // The fallback in force ("emulator", "neighbour" or "new"; "auto" resolved at load).
  const std::string& fallback() const;
  // The cache version look-ups use (empty without a cache or with an empty one).
  const std::string& lookup_version() const;
  // The model folder's name, without its path (what /healthz shows).
  std::string model_name() const;
  // One line: model, gate, T, cache and its version, look-up policy (with file paths: for logs).
  std::string describe() const;

 private:
  struct Impl;
  explicit CompatiblePredictor(std::unique_ptr<Impl> impl);
  static std::vector<float> gate_values(const Impl& m, const models::ClassifierOutput& fresh, const std::vector<cache::Lookup>& found);
  std::unique_ptr<Impl> impl_;
};

// Throws ModelError when a saved model's card asks for more tokens (max_length) than its
// encoder has positions: a text that long would fail its whole batch. Folders without a card
// (Hugging Face checkpoints) and models without an encoder pass.
void check_encoder_limits(const std::filesystem::path& model_dir);

// The embedding space a saved model's pooled embeddings live in (see embedding_space()).
std::string embedding_space_of(const std::filesystem::path& model_dir);

}  // namespace flipless::serve
