#include "flipless/methods/method.h"

namespace flipless::methods {

const Descriptor& vanilla() {
  static const Descriptor kMethod{.name = "vanilla",
                                  .label = "new model (vanilla)",
                                  .summary = "the new model trained alone",
                                  .runner = Runner::kVanilla};
  return kMethod;
}

}  // namespace flipless::methods
