#pragma once
// A flipless variant of Gated Fusion, not the paper's (methods: gated_fusion_heldout): the gate
// fitted after the new model is trained, on labelled rows neither model was trained on, with both
// models frozen. The paper trains the gate in the new model's last epoch on the training rows,
// where the new model is already right almost everywhere, so there is little for the gate to
// learn about where the new model fails (RESULTS.md, "does the gate route"). On held-out rows
// the new model makes its real mistakes, and the gate sees them.
//
// Same gate and fusion as the paper's (nn::GatedFusion): l = (1 - a) l_old / T + a l_new, trained
// by the cross-entropy of the fused logits; only the gate's parameters move.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "flipless/nn/gated_fusion.h"

namespace flipless::train {

struct GateFitConfig {
  nn::GatedFusionConfig gate{};  // temperature, dropout, old_confidence (the gate's inputs)
  double lr = 1e-3;              // AdamW
  double weight_decay = 0.01;
  int epochs = 30;               // passes over the fitting rows
  std::int64_t batch_size = 32;
  std::uint64_t seed = 0;        // the gate's initial weights, batch order and dropout
  // Rows the old model gets right weigh 1 + keep_weight in the loss (focal distillation's
  // weighting, on the gate): 0 is plain cross-entropy; higher values trade accuracy on rows the
  // old model gets wrong for fewer negative flips.
  double keep_weight = 0;
  void validate() const;         // throws ConfigError
};

// Rows to fit or fuse: the new model's pooled embeddings (n, dim), its logits and the old
// model's (n, k), and the labels (n,) (unused by apply_gate).
struct GateRows {
  torch::Tensor embeddings, new_logits, old_logits, labels;
  std::int64_t size() const { return labels.defined() ? labels.size(0) : new_logits.size(0); }
  GateRows subset(const torch::Tensor& index) const;
};

struct FittedGate {
  nn::GatedFusion gate{nullptr};
  std::int64_t steps = 0;  // optimizer steps taken
};

// Fits a gate on `rows`. Deterministic for a seed and thread count; leaves the shared CPU
// random generator as it was. Throws InputError on fewer than 2 rows or mismatched shapes.
FittedGate fit_gate(const GateRows& rows, const GateFitConfig& c);

// The fused logits and gate values (eval mode, no gradient).
nn::FusionOutput apply_gate(nn::GatedFusion& gate, const GateRows& rows);

// Writes a gate's parameters as DIR/gate.safetensors (tensors gate.0, gate.1, ... in parameter
// order: what flipless serve and predict read back).
void save_gate(const std::filesystem::path& dir, const std::vector<torch::Tensor>& parameters);

// A Gated Fusion model folder's gate (any gated method's), as flipless serve and the cache
// experiment read it: DIR/gate.safetensors with the card's temperature and whether the gate also
// reads the two models' probabilities (gated_fusion_confidence, or gated_fusion_heldout's
// confidence setting). Float32, eval mode. Throws ModelError naming the file and field (a card
// that is not a gated method's, a missing gate, shapes that do not fit).
struct SavedGate {
  nn::GatedFusion gate{nullptr};
  double temperature = 1;
  bool old_confidence = false;
  std::int64_t dim = 0;  // the embedding width the gate reads
};
SavedGate load_gate(const std::filesystem::path& dir, std::int64_t num_labels);

// a(x) of n rows (eval mode, no gradient, float32): `embeddings` (n, dim) row-major; a gate that
// reads the probabilities also reads `new_logits` and `old_logits` (n, k), which the paper's gate
// ignores. What serving and the cache experiment both evaluate.
std::vector<float> gate_values(nn::GatedFusion& gate, std::span<const float> embeddings, std::span<const float> new_logits,
                               std::span<const float> old_logits, std::int64_t n);

// Cross-fitting: `rows` split into `folds` parts by a permutation drawn from `c.seed`; each part
// fused by a gate fitted on the others. Every row's output comes from a gate that never saw it,
// so a setting chosen on these outputs is chosen on held-out rows.
nn::FusionOutput cross_fit_gate(const GateRows& rows, const GateFitConfig& c, int folds);

}  // namespace flipless::train
