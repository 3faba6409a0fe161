// The method registry (issue 15): every method described once, consistently, and what the
// experiment config and flipless methods list know comes from it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/experiment/config.h"
#include "flipless/methods/method.h"

namespace flipless::methods {
namespace {

TEST(MethodRegistry, EveryMethodIsDescribedOnceWithValidDefaults) {
  std::set<std::string> names, labels;
  // A flag shared by several methods (Gated Fusion's family) means one parameter with one default.
  std::map<std::string, std::pair<std::string, double>> flags;
  for (const auto* d : registry()) {
    EXPECT_TRUE(names.insert(d->name).second) << d->name;
    EXPECT_TRUE(labels.insert(d->label).second) << d->label;
    EXPECT_EQ(find(d->name), d);
    EXPECT_FALSE(d->summary.empty()) << d->name;
    EXPECT_EQ(d->strategy != Strategy::kNone, d->runner == Runner::kStrategy) << d->name;
    for (const auto& p : d->params) {
      if (p.type == ParamType::kWord) {
        EXPECT_FALSE(p.words.empty()) << d->name << "." << p.key;
        for (const auto& w : p.words) {
          EXPECT_NE(std::find(p.allowed.begin(), p.allowed.end(), w), p.allowed.end()) << d->name << "." << p.key;
        }
      } else {
        EXPECT_FALSE(p.grid.empty()) << d->name << "." << p.key;
        for (double x : p.grid) {
          if (p.check) {
            EXPECT_EQ(p.check(x), "") << d->name << "." << p.key << " " << x;
          }
        }
      }
      if (p.flag.empty()) continue;
      EXPECT_EQ(p.flag.rfind("--", 0), 0u) << p.flag;
      const auto [it, fresh] = flags.emplace(p.flag, std::make_pair(p.key, p.train));
      if (!fresh) {
        EXPECT_EQ(it->second.first, p.key) << p.flag;
        EXPECT_EQ(it->second.second, p.train) << p.flag;
      }
    }
  }
  EXPECT_EQ(find("no_such_method"), nullptr);
  std::vector<std::string> in_order;
  for (const auto* d : registry()) in_order.push_back(d->name);
  EXPECT_EQ(experiment::experiment_methods(), in_order);
  EXPECT_TRUE(gated_fusion().cache_experiment);
  EXPECT_TRUE(gated_fusion().gated);
}

// The flipless variant is Gated Fusion with the confidence inputs: same parameters, grids and
// flags, its own name and label, and the cache experiment (its gate re-evaluated there).
TEST(MethodRegistry, TheConfidenceVariantIsGatedFusionWithOneSwitch) {
  const auto* variant = find("gated_fusion_confidence");
  ASSERT_NE(variant, nullptr);
  EXPECT_TRUE(variant->gated);
  EXPECT_TRUE(variant->old_confidence);
  EXPECT_FALSE(gated_fusion().old_confidence);
  EXPECT_TRUE(variant->cache_experiment);
  EXPECT_EQ(variant->strategy, gated_fusion().strategy);
  ASSERT_EQ(variant->params.size(), gated_fusion().params.size());
  for (std::size_t i = 0; i < variant->params.size(); ++i) {
    EXPECT_EQ(variant->params[i].key, gated_fusion().params[i].key);
    EXPECT_EQ(variant->params[i].grid, gated_fusion().params[i].grid);
    EXPECT_EQ(variant->params[i].flag, gated_fusion().params[i].flag);
  }
}

// A config naming every method takes each one's default grid; a value out of a parameter's
// bounds is refused with the descriptor's reason, naming the file, line and key.
TEST(MethodRegistry, ConfigsTakeTheDescriptorsGridsAndBounds) {
  flipless::testing::TempDir dir;
  std::string yaml = "tasks: [sst2]\nold: {kind: fasttext}\nnew: {kind: frozen, model: m}\nmethods:\n";
  for (const auto* d : registry()) yaml += "  " + d->name + ": {}\n";
  const auto config = experiment::parse_experiment(yaml, dir.path() / "all.yaml");
  ASSERT_EQ(config.methods.size(), registry().size());
  for (const auto& m : config.methods) {
    const auto* d = find(m.name);
    ASSERT_NE(d, nullptr);
    for (const auto& p : d->params) {
      if (p.type == ParamType::kWord) {
        EXPECT_EQ(m.words.at(p.key), p.words) << m.name;
      } else {
        EXPECT_EQ(m.numbers.at(p.key), p.grid) << m.name;
      }
    }
    EXPECT_EQ(experiment::unit_sizes(m), d->sizes ? std::vector<int>{5} : std::vector<int>{0}) << m.name;
  }
  const auto bad = "tasks: [sst2]\nold: {kind: fasttext}\nnew: {kind: frozen, model: m}\nmethods:\n  gated_fusion_confidence: {drop_gate: [0.5, 1.5]}\n";
  EXPECT_EQ(flipless::testing::error_of<ConfigError>([&] { experiment::parse_experiment(bad, dir.path() / "bad.yaml"); }),
            (dir.path() / "bad.yaml").string() + ":5: methods.gated_fusion_confidence.drop_gate: a probability in [0, 1), got 1.5");
}

}  // namespace
}  // namespace flipless::methods
