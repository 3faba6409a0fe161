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
const Descriptor& gated_fusion_heldout() {
  static const Descriptor kMethod{
      .name = "gated_fusion_heldout",
      .label = "GF, gate fit on held-out rows (flipless variant)",
      .summary = "flipless variant of Gated Fusion: vanilla model frozen, gate fitted on the validation split",
      .runner = Runner::kHeldOutGate,
      .params = {{.key = "temperature", .grid = {1.0, 1.4}, .check = check_positive},
                 {.key = "gate_lr", .grid = {1e-3, 1e-2}, .check = check_positive},
                 {.key = "weight_decay", .grid = {0.01}, .check = check_non_negative},
                 // rows the old model gets right weigh 1 + keep_weight in the gate's loss
                 {.key = "keep_weight", .grid = {0, 1, 3}, .check = check_non_negative},
                 {.key = "confidence", .type = ParamType::kBool, .grid = {0, 1}},  // the gate also reads old/new probabilities
                 {.key = "epochs", .grid = {30}, .check = check_epochs},
                 {.key = "dropout", .grid = {0.1}, .check = check_dropout, .in_card = false}},
      .gated = true};
  return kMethod;
}

}  // namespace flipless::methods
