#include "flipless/methods/method.h"

namespace flipless::methods {

// Xie et al. 2021; the loss is train::DistillationConfig's.
const Descriptor& distillation() {
  static const Descriptor kMethod{
      .name = "distillation",
      .label = "distillation",
      .summary = "CE + lambda * KL(old || new) at temperature T where p_old(y) > p_new(y) (Xie et al. 2021)",
      .runner = Runner::kStrategy,
      .strategy = Strategy::kDistillation,
      .params = {{.key = "lambda", .grid = {0.1, 1, 10}, .check = check_non_negative, .flag = "--distill-lambda",
                  .help = "distillation: weight of the KL term", .train = 1.0},
                 {.key = "temperature", .grid = {0.5, 1, 2}, .check = check_positive, .flag = "--distill-temperature",
                  .help = "distillation: temperature", .train = 1.0}}};
  return kMethod;
}

}  // namespace flipless::methods
