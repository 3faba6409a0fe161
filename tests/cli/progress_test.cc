// The progress bar's rate and ETA (src/cli/progress.h), read at given elapsed times.
#include "progress.h"

#include <gtest/gtest.h>

namespace flipless::cli {
namespace {

TEST(ProgressBarTest, RateAndEtaCountTheItemsDoneSinceTheBarWasMade) {
  ProgressBar bar("epoch 1", 310, "", false);
  bar.update(140, "loss 0.41");
  const auto line = bar.line_at(17.0);
  EXPECT_NE(line.find(" 45% 140/310 8.2 /s 0:17 ETA 0:20  loss 0.41"), std::string::npos) << line;
}

TEST(ProgressBarTest, ABarMadeAtItsFirstReportShowsNoRateUntilAnItemIsTimed) {
  // Made after step 1 finished: step 1 took time the bar never saw. Divided by the microseconds
  // since the bar was made it read "1470588.2 /s" in a run's log.
  ProgressBar bar("new model seed 0 epoch 1", 104, "", false, 1);
  bar.update(1);
  auto line = bar.line_at(1e-6);
  EXPECT_NE(line.find(" 1/104 - /s 0:00 ETA -"), std::string::npos) << line;
  // 50 steps timed in 63 s: 0.79 steps/s, 53 left.
  bar.update(51);
  line = bar.line_at(63.0);
  EXPECT_NE(line.find(" 49% 51/104 0.8 /s 1:03 ETA 1:06"), std::string::npos) << line;
}

TEST(ProgressBarTest, MoreDoneThanPlannedReadsFullWithoutANegativeEta) {
  ProgressBar bar("grid", 2, "", false);
  bar.update(3);
  const auto line = bar.line_at(10.0);
  EXPECT_NE(line.find("[########################] 100% 3/2 0.3 /s 0:10 ETA 0:00"), std::string::npos) << line;
}

}  // namespace
}  // namespace flipless::cli
