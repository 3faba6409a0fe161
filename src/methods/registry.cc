#include <fmt/format.h>

#include "flipless/methods/method.h"

namespace flipless::methods {

// One function per method, each in its own file of this folder.
const Descriptor& vanilla();
const Descriptor& distillation();
const Descriptor& focal_distillation();
const Descriptor& gated_fusion_confidence();
const Descriptor& gated_fusion_gate_lr();
const Descriptor& gated_fusion_heldout();
const Descriptor& elodi();
const Descriptor& new_ensemble();
const Descriptor& old_new_prob_ensemble();
const Descriptor& old_new_logit_ensemble();
const Descriptor& bcwi();

const std::vector<const Descriptor*>& registry() {
  static const std::vector<const Descriptor*> kAll = {&vanilla(),      &distillation(),          &focal_distillation(),     &gated_fusion(),
                                                      &gated_fusion_confidence(), &gated_fusion_gate_lr(), &gated_fusion_heldout(), &elodi(), &new_ensemble(), &old_new_prob_ensemble(),
                                                      &old_new_logit_ensemble(), &bcwi()};
  return kAll;
}

const Descriptor* find(const std::string& name) {
  for (const auto* d : registry()) {
    if (d->name == name) return d;
  }
  return nullptr;
}

const Param* Descriptor::param(const std::string& key) const {
  for (const auto& p : params) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

std::string check_probability(double x) { return x >= 0 && x < 1 ? "" : fmt::format("a probability in [0, 1), got {}", x); }
std::string check_positive(double x) { return x > 0 ? "" : fmt::format("must be positive, got {}", x); }
std::string check_non_negative(double x) { return x >= 0 ? "" : fmt::format("must be >= 0, got {}", x); }
std::string check_weight(double x) { return x >= 0 && x <= 1 ? "" : fmt::format("a weight in [0, 1], got {}", x); }

}  // namespace flipless::methods
