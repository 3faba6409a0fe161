#include "flipless/methods/method.h"

namespace flipless::methods {

// Yan et al. 2021 (positive-congruent training); the loss is train::FocalDistillationConfig's.
const Descriptor& focal_distillation() {
  static const Descriptor kMethod{
      .name = "focal_distillation",
      .label = "focal distillation",
      .summary = "CE + (alpha + beta * [old right]) * KL or logit-L2 to the old model (Yan et al. 2021)",
      .runner = Runner::kStrategy,
      .strategy = Strategy::kFocalDistillation,
      .params = {{.key = "alpha", .grid = {1}, .check = check_non_negative, .flag = "--focal-alpha",
                  .help = "focal_distillation: weight on every example", .train = 1.0},
                 {.key = "beta", .grid = {5}, .check = check_non_negative, .flag = "--focal-beta",
                  .help = "focal_distillation: extra weight where the old model is right", .train = 5.0},
                 {.key = "temperature", .grid = {1}, .check = check_positive, .train = 1.0},
                 {.key = "distance", .type = ParamType::kWord, .words = {"kl"}, .allowed = {"kl", "l2"}, .flag = "--focal-distance",
                  .help = "focal_distillation: kl or l2", .train_word = "kl"}}};
  return kMethod;
}

}  // namespace flipless::methods
