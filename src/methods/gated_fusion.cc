#include "flipless/methods/method.h"

namespace flipless::methods {

namespace {
std::string check_dropout(double x) { return x >= 0 && x < 1 ? "" : "must be in [0, 1)"; }
}  // namespace

// Lai et al. 2023: the new model alone for N-1 epochs, then the new model and a gate on its
// pooled embedding trained on the fused logits at lr2 (train::GatedFusionStrategyConfig).
const Descriptor& gated_fusion() {
  static const Descriptor kMethod{
      .name = "gated_fusion",
      .label = "Gated Fusion",
      .summary = "a gate on the new model's pooled embedding mixes old and new logits (Lai et al. 2023)",
      .runner = Runner::kStrategy,
      .strategy = Strategy::kGatedFusion,
      .params = {{.key = "drop_gate", .grid = {0.4, 0.5, 0.6, 0.8}, .check = check_probability, .flag = "--gf-drop-gate",
                  .help = "gated_fusion: drop-gate probability D", .train = 0.5},
                 {.key = "temperature", .grid = {1.0, 1.2, 1.4, 1.6}, .check = check_positive, .flag = "--gf-temperature",
                  .help = "gated_fusion: temperature T on the old logits", .train = 1.0},
                 // flipless train: 0 picks 1e-5 for fine-tuned models and --lr for heads.
                 {.key = "lr2", .grid = {5e-7, 1e-6, 3e-6, 1e-5, 3e-5}, .check = check_positive, .flag = "--gf-lr2",
                  .help = "gated_fusion: learning rate of the last epoch (0: 1e-5 fine-tuned, --lr for heads)", .train = 0,
                  .show_default = false},
                 {.key = "dropout", .grid = {0.1}, .check = check_dropout, .flag = "--gf-dropout", .help = "gated_fusion: gate dropout",
                  .train = 0.1, .in_card = false},
                 {.key = "stop_gradient", .type = ParamType::kBool, .grid = {1}, .flag = "--gf-no-stop-gradient",
                  .help = "gated_fusion ablation: let the gate's gradient reach the encoder", .train = 1},
                 {.key = "warmup", .type = ParamType::kBool, .grid = {1}, .flag = "--gf-no-warmup",
                  .help = "gated_fusion ablation: fuse from the first epoch", .train = 1}},
      .gated = true,
      .cache_experiment = true};
  return kMethod;
}

}  // namespace flipless::methods
