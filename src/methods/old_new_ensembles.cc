#include "flipless/methods/method.h"

namespace flipless::methods {

namespace {
Param alpha() { return {.key = "alpha", .grid = {0.5, 0.6, 0.7, 0.8, 0.9}, .check = check_weight}; }
}  // namespace

// The old and the new model's outputs mixed, the weight chosen on validation (ensemble/old_new.h).
const Descriptor& old_new_prob_ensemble() {
  static const Descriptor kMethod{.name = "old_new_prob_ensemble",
                                  .label = "old-new probs ensemble",
                                  .summary = "(1 - a) p_old + a p_new, a chosen on validation (flipless ensemble --kind prob)",
                                  .runner = Runner::kOldNewEnsemble,
                                  .params = {alpha()},
                                  .probabilities = true};
  return kMethod;
}

const Descriptor& old_new_logit_ensemble() {
  static const Descriptor kMethod{.name = "old_new_logit_ensemble",
                                  .label = "old-new logits ensemble",
                                  .summary = "(1 - a) l_old + a l_new, a chosen on validation (flipless ensemble --kind logit)",
                                  .runner = Runner::kOldNewEnsemble,
                                  .params = {alpha()}};
  return kMethod;
}

}  // namespace flipless::methods
