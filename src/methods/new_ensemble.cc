#include "flipless/methods/method.h"

namespace flipless::methods {

const Descriptor& new_ensemble() {
  static const Descriptor kMethod{.name = "new_ensemble",
                                  .label = "new-model ensemble",
                                  .summary = "majority vote of k new models trained with different seeds (flipless vote; experiments)",
                                  .runner = Runner::kNewEnsemble,
                                  .sizes = true};
  return kMethod;
}

}  // namespace flipless::methods
