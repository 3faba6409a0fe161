#include <fmt/format.h>

#include "flipless/methods/method.h"

namespace flipless::methods {

namespace {
std::string check_dropout(double x) { return x >= 0 && x < 1 ? "" : fmt::format("must be in [0, 1), got {}", x); }
std::string check_epochs(double x) { return x >= 1 && x <= 1000 && x == static_cast<int>(x) ? "" : fmt::format("a whole number in [1, 1000], got {}", x); }
}  // namespace

// A flipless variant (not the paper's): the vanilla model of the same seed, frozen, and a gate
// fitted afterwards on the validation split, where the new model makes real mistakes (the
// paper's gate is trained on training rows, which the new model already fits). Settings are
// chosen on cross-fitted gates (each validation row fused by a gate that never saw it); the
// chosen setting's gate is then fitted on the whole validation split (train::fit_gate).
// flipless train --method gated_fusion_heldout --old RUN trains the vanilla model, then fits the
// gate on its validation split with the flags' setting (no grid).
const Descriptor& gated_fusion_heldout() {
  static const Descriptor kMethod{
      .name = "gated_fusion_heldout",
      .label = "GF, gate fit on held-out rows (flipless variant)",
      .summary = "flipless variant of Gated Fusion: vanilla model frozen, gate fitted on the validation split",
      .runner = Runner::kHeldOutGate,
      .params = {{.key = "temperature", .grid = {1.0, 1.4}, .check = check_positive, .flag = "--heldout-temperature",
                  .help = "gated_fusion_heldout: temperature T on the old logits", .train = 1.0},
                 {.key = "gate_lr", .grid = {1e-3, 1e-2}, .check = check_positive, .flag = "--heldout-lr",
                  .help = "gated_fusion_heldout: the gate's learning rate", .train = 1e-3},
                 {.key = "weight_decay", .grid = {0.01}, .check = check_non_negative, .flag = "--heldout-weight-decay",
                  .help = "gated_fusion_heldout: the gate's weight decay", .train = 0.01},
                 // rows the old model gets right weigh 1 + keep_weight in the gate's loss
                 {.key = "keep_weight", .grid = {0, 1, 3}, .check = check_non_negative, .flag = "--heldout-keep-weight",
                  .help = "gated_fusion_heldout: extra weight of rows the old model gets right", .train = 1},
                 // the gate also reads the old and new probabilities
                 {.key = "confidence", .type = ParamType::kBool, .grid = {0, 1}, .flag = "--heldout-no-confidence",
                  .help = "gated_fusion_heldout: the gate reads the embedding only, not the two models' probabilities", .train = 1},
                 {.key = "epochs", .grid = {30}, .check = check_epochs, .flag = "--heldout-epochs",
                  .help = "gated_fusion_heldout: passes over the validation split", .train = 30},
                 {.key = "dropout", .grid = {0.1}, .check = check_dropout, .train = 0.1, .in_card = false}},
      .gated = true,
      .cache_experiment = true};
  return kMethod;
}

}  // namespace flipless::methods
