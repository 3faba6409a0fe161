#include "flipless/methods/method.h"

namespace flipless::methods {

// A flipless variant (not the paper's): Gated Fusion whose gate also reads the old and the new
// model's probabilities (nn::GatedFusionConfig::old_confidence). Same parameters and flags.
const Descriptor& gated_fusion_confidence() {
  static const Descriptor kMethod = [] {
    Descriptor d = gated_fusion();
    d.name = "gated_fusion_confidence";
    d.label = "GF + old/new confidence (flipless variant)";
    d.summary = "flipless variant of Gated Fusion: the gate also reads the old and new models' probabilities";
    d.old_confidence = true;
    return d;
  }();
  return kMethod;
}

}  // namespace flipless::methods
