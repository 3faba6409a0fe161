// Cross-check against microsoft/BackwardCompatibilityML and SciPy; see
// tests/golden/metrics/PROVENANCE.md.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "flipless/metrics/rates.h"
#include "flipless/metrics/uncertainty.h"

namespace flipless::metrics {
namespace {

nlohmann::json load_golden() {
  std::ifstream in(std::string(FLIPLESS_TEST_DIR) + "/golden/metrics/golden.json");
  EXPECT_TRUE(in.good()) << "missing golden.json";
  return nlohmann::json::parse(in);
}

TEST(GoldenBackwardCompatibilityML, TrustCompatibilityEqualsOurBtc) {
  const auto golden = load_golden();
  ASSERT_GE(golden["cases"].size(), 10u);
  int undefined = 0;
  for (const auto& c : golden["cases"]) {
    const auto y = c["y_true"].get<std::vector<std::int32_t>>();
    const auto old_pred = c["old_pred"].get<std::vector<std::int32_t>>();
    const auto new_pred = c["new_pred"].get<std::vector<std::int32_t>>();
    const FlipCounts counts = count_flips(y, old_pred, new_pred);
    const double theirs = c["bcml_trust_compatibility_score"].get<double>();
    const auto ours = backward_trust_compatibility(counts);
    if (counts.old_correct() == 0) {
      EXPECT_FALSE(ours);
      EXPECT_EQ(theirs, 0.0);
      ++undefined;
    } else {
      ASSERT_TRUE(ours);
      EXPECT_NEAR(*ours, theirs, 1e-12) << "n=" << y.size();
    }
  }
  EXPECT_EQ(undefined, 1);  // the case with an always-wrong old model
}

TEST(GoldenBackwardCompatibilityML, ErrorCompatibilityDividesByOldErrors) {
  const auto golden = load_golden();
  int differing = 0;
  for (const auto& c : golden["cases"]) {
    const auto y = c["y_true"].get<std::vector<std::int32_t>>();
    const FlipCounts counts =
        count_flips(y, c["old_pred"].get<std::vector<std::int32_t>>(), c["new_pred"].get<std::vector<std::int32_t>>());
    const double theirs = c["bcml_error_compatibility_score"].get<double>();
    if (counts.old_errors() == 0) {
      EXPECT_EQ(theirs, 0.0);
      continue;
    }
    // Their definition: both wrong / old errors (not what their docstring says).
    EXPECT_NEAR(theirs, counts.both_wrong / counts.old_errors(), 1e-12);
    // Ours: both wrong / new errors (Srivastava et al. 2020).
    const auto ours = backward_error_compatibility(counts);
    if (ours && counts.old_errors() != counts.new_errors()) {
      EXPECT_NE(*ours, theirs);
      ++differing;
    }
  }
  EXPECT_GE(differing, 5);
}

TEST(GoldenScipy, McNemarExactMatchesBinomtest) {
  const auto golden = load_golden();
  for (const auto& c : golden["mcnemar"]) {
    const auto b = c["negative_flips"].get<std::uint64_t>(), k = c["positive_flips"].get<std::uint64_t>();
    const double expected = c["p"].get<double>();
    EXPECT_NEAR(mcnemar_exact_p(b, k), expected, 1e-9 * std::max(expected, 1e-300)) << b << " vs " << k;
  }
}

}  // namespace
}  // namespace flipless::metrics
