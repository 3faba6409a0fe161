#include <fmt/format.h>

#include "flipless/methods/method.h"

namespace flipless::methods {

namespace {
constexpr int kMaxMembers = 1000;  // as many as seeds: each member is a model trained once more
std::string check_members(double x) {
  return x < 2 || x > kMaxMembers || x != static_cast<int>(x) ? fmt::format("a whole number of 2 to {} models", kMaxMembers) : "";
}
}  // namespace

// Zhao et al. 2022; the loss is train::ElodiConfig's. The reference is the mean logits of
// `members` other new models (the runner trains them) or the old model's (flipless train).
const Descriptor& elodi() {
  static const Descriptor kMethod{
      .name = "elodi",
      .label = "ELODI (logit-difference inhibition)",
      .summary = "CE + lambda * squared logit differences above xi to a reference ensemble (Zhao et al. 2022)",
      .runner = Runner::kStrategy,
      .strategy = Strategy::kElodi,
      .params = {{.key = "lambda", .grid = {1}, .check = check_non_negative, .flag = "--elodi-lambda",
                  .help = "elodi: weight of the logit-difference term (reference: the old model's logits)", .train = 1.0},
                 {.key = "xi", .grid = {0}, .check = check_non_negative, .flag = "--elodi-xi", .help = "elodi: logit differences up to xi are free",
                  .train = 0.0},
                 {.key = "members", .grid = {5}, .check = check_members, .in_card = false},
                 {.key = "reference", .type = ParamType::kWord, .words = {"ensemble"}, .allowed = {"ensemble", "old"}, .train_word = "old"}}};
  return kMethod;
}

}  // namespace flipless::methods
