#pragma once
// An old-model emulator: what serving falls back on for an input whose old logits are not
// cached, once the old model is retired (issue 14, "the partial-cache gap").
//
// The paper's fallback for a cache miss is the nearest cached input's old logits (SPEC.md,
// "Inference with a cache"); measured, a neighbour's old label is the input's own less often
// than the new model's own label is. The emulator learns the old model instead: a ridge
// regression from the new model's pooled embedding (the cache's key space) to the old model's
// logits, fitted on the cached entries themselves. Its strength is chosen by k-fold
// cross-validation on those entries (lowest held-out squared error), then it is refitted on all
// of them. It is linear, so it is exact to fit (a Cholesky solve in double precision, Eigen),
// deterministic, and cheap to serve (one d x k product per input).
//
// Saved as safetensors ("weight" (dim, k) and "bias" (k,), float32) with its provenance in the
// metadata; `flipless cache fit-emulator` writes it into a Gated Fusion model folder as
// old_emulator.safetensors, and `flipless serve` uses it on misses.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace flipless::cache {

struct EmulatorFitOptions {
  // Ridge strengths, as multiples of the mean per-feature sum of squares of the centred
  // embeddings (so the grid means the same for any embedding scale).
  std::vector<double> relative_lambdas = {1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
  int folds = 5;
  std::uint64_t seed = 0;  // the fold assignment
};

// The fewest entries an emulator is fitted on (fewer: fit_old_emulator throws InputError).
inline constexpr std::size_t kMinEmulatorRows = 20;

class OldEmulator {
 public:
  OldEmulator() = default;

  std::size_t dim() const { return dim_; }
  std::size_t num_labels() const { return num_labels_; }
  bool empty() const { return dim_ == 0; }

  // Emulated old logits (num_labels,) of one embedding (dim,).
  std::vector<float> predict(std::span<const float> embedding) const;
  // The same for n embeddings, row-major (n, dim) -> (n, num_labels).
  std::vector<float> predict_rows(std::span<const float> embeddings) const;

  // How it was fitted (written to and read from the file's metadata).
  std::size_t rows = 0;                // cached entries it was fitted on
  double relative_lambda = 0;          // the chosen ridge strength (see EmulatorFitOptions)
  double held_out_mse = 0;             // cross-validated mean squared error per logit
  double held_out_agreement = 0;       // cross-validated share of entries whose emulated old label is the cached one
  std::string embedding_space;         // the cache version's embedding model ("" when unknown)
  std::string cache_version;           // the cache version's tag ("" when fitted outside a cache)

  // Writes the emulator atomically. Throws IoError.
  void save(const std::filesystem::path& path) const;
  // Reads one. Throws ModelError naming the file for a file that is not an emulator, has
  // inconsistent shapes or non-finite values.
  static OldEmulator load(const std::filesystem::path& path);

 private:
  friend OldEmulator fit_old_emulator(std::span<const float>, std::span<const float>, std::size_t, std::size_t,
                                      const EmulatorFitOptions&);
  std::size_t dim_ = 0, num_labels_ = 0;
  std::vector<float> weight_;  // (dim, k) row-major
  std::vector<float> bias_;    // (k,)
};

// Fits an emulator on n entries: embeddings (n, dim) and old logits (n, num_labels), row-major.
// Throws InputError for fewer than kMinEmulatorRows entries, mismatched sizes or non-finite
// values.
OldEmulator fit_old_emulator(std::span<const float> embeddings, std::span<const float> old_logits, std::size_t dim,
                             std::size_t num_labels, const EmulatorFitOptions& options = {});

}  // namespace flipless::cache
