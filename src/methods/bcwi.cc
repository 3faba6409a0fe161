#include "flipless/methods/method.h"

namespace flipless::methods {

// Schumann et al. 2023: fine-tune from the old weights, then interpolate old and new weights.
const Descriptor& bcwi() {
  static const Descriptor kMethod{
      .name = "bcwi",
      .label = "BCWI (weight interpolation)",
      .summary = "interpolate old and new weights of one architecture, weight chosen on validation (experiments)",
      .runner = Runner::kBcwi,
      .params = {{.key = "alpha", .grid = {0.5, 0.6, 0.7, 0.8, 0.9}, .check = check_weight}}};
  return kMethod;
}

}  // namespace flipless::methods
