#pragma once
// A compatibility method described once (issue 15): its parameters with type, default grid,
// bounds and flipless train flag; how the runner runs it; its report label; its summary. The
// experiment config, the runner, flipless train, flipless methods list and the report loop
// over the registry instead of naming methods.
//
// Adding a method: one file in src/methods/ that defines its descriptor, its line in
// src/methods/registry.cc, and a test. A method with a loss of its own also needs its strategy
// (train/strategy.h); a variant of an existing one (gated_fusion_confidence) needs nothing else.
// Torch-free: configs are checked and reports written without the ML build.
#include <string>
#include <vector>

namespace flipless::methods {

enum class ParamType { kNumber, kBool, kWord };

struct Param {
  std::string key{};
  ParamType type = ParamType::kNumber;
  std::vector<double> grid{};         // default grid of a number (booleans as 0 and 1)
  std::vector<std::string> words{};   // default grid of a word
  std::vector<std::string> allowed{}; // the words a word takes
  // "" when `x` is a valid value, else why not ("a probability in [0, 1), got 1.5").
  std::string (*check)(double x) = nullptr;
  // flipless train: one training's value, given by `flag` ("" when there is none: `train` is
  // then fixed). A boolean's flag is a switch that sets it to false (--gf-no-warmup).
  std::string flag{}, help{};
  double train = 0;
  std::string train_word{};
  bool show_default = true;  // the flag's help shows its default
  bool in_card = true;       // written in the model card's "method"
};

// How the experiment runner runs a method.
enum class Runner {
  kVanilla,         // the new model trained alone
  kStrategy,        // a training strategy, one training per grid setting (train/strategy.h)
  kNewEnsemble,     // majority vote of new models
  kOldNewEnsemble,  // old and new outputs mixed with a weight chosen on validation
  kBcwi,            // old and new weights interpolated
  kHeldOutGate,     // the vanilla model frozen, a Gated Fusion gate fitted on the validation split
};

// The loss a kStrategy method trains with (train::strategy_config builds it).
enum class Strategy { kNone, kDistillation, kFocalDistillation, kGatedFusion, kElodi };

struct Descriptor {
  std::string name{};   // config key, --method value, unit folder
  std::string label{};  // the report's row label
  std::string summary{};  // flipless methods list
  Runner runner = Runner::kStrategy;
  Strategy strategy = Strategy::kNone;
  std::vector<Param> params{};
  bool sizes = false;             // ensemble sizes, each its own unit (new_ensemble-N)
  bool probabilities = false;     // kOldNewEnsemble: mixes probabilities (else logits)
  // Gated Fusion's family: a gate trained in the last epoch (warm-up shared with vanilla's run;
  // lr2 unused without warm-up), gate values and the new model alone written beside the
  // predictions, Gated Fusion's claims in the report.
  bool gated = false;
  bool old_confidence = false;    // the gate also reads the old and new probabilities
  bool cache_experiment = false;  // the paper's table 5 runs on this method's units
  // flipless train runs it (the held-out gate: the vanilla model, then its gate on validation).
  bool trains() const { return runner == Runner::kVanilla || runner == Runner::kStrategy || runner == Runner::kHeldOutGate; }
  const Param* param(const std::string& key) const;
};

// Every method, in the order flipless methods list prints them.
const std::vector<const Descriptor*>& registry();
// The method named `name`, or nullptr.
const Descriptor* find(const std::string& name);
// The paper's Gated Fusion: the cache experiment (table 5), table 4 and the T sweep read its units.
const Descriptor& gated_fusion();

// Bounds shared by several methods' parameters.
std::string check_probability(double x);   // [0, 1)
std::string check_positive(double x);      // > 0
std::string check_non_negative(double x);  // >= 0
std::string check_weight(double x);        // [0, 1]

}  // namespace flipless::methods
