#include "flipless/methods/method.h"

namespace flipless::methods {

// A flipless variant (not the paper's), kept as a diagnosis: Gated Fusion whose gate trains at a
// learning rate of its own in the last epoch while the new model keeps lr2 (train::
// GatedFusionStrategyConfig::gate_lr). At the paper's lr2 (1e-5 or so) the gate's weights move
// too little in one epoch to route: its value stays near its start on every input. Given a rate
// of its own, it learns from the training rows, which the warmed-up new model already fits, to
// trust the new model everywhere (RESULTS.md has the numbers). Otherwise the paper's parameters
// and flags.
const Descriptor& gated_fusion_gate_lr() {
  static const Descriptor kMethod = [] {
    Descriptor d = gated_fusion();
    d.name = "gated_fusion_gate_lr";
    d.label = "GF, gate at its own learning rate (flipless variant)";
    d.summary = "flipless variant of Gated Fusion: the gate trains at its own learning rate in the last epoch (the new model at lr2)";
    d.params.push_back({.key = "gate_lr", .grid = {1e-3, 1e-2}, .check = check_positive, .flag = "--gf-gate-lr",
                        .help = "gated_fusion_gate_lr: the gate's learning rate in the last epoch", .train = 1e-3});
    return d;
  }();
  return kMethod;
}

}  // namespace flipless::methods
