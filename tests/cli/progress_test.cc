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

TEST(ProgressBarTest, ABarMadeAgainTimesFromTheFirstReportOfItsLabel) {
  // `flipless experiment run` shows a grid's bar, then the setting's epoch bars, then the grid's
  // bar again: made afresh each time, a 4-setting grid read "- /s ETA -" for the hour it ran.
  BarStarts starts;
  const auto t0 = ProgressBar::Clock::now() - std::chrono::seconds(720);
  EXPECT_EQ(starts.begin("gf seed 0 grid", 0, t0).done, 0);
  starts.begin("gf seed 0 [1/4] epoch 3", 1, t0 + std::chrono::seconds(60));
  const auto again = starts.begin("gf seed 0 grid", 1);  // after the first setting: the first report's time and count
  EXPECT_EQ(again.at, t0);
  EXPECT_EQ(again.done, 0);
  ProgressBar bar("gf seed 0 grid", 4, "", false, again.done, again.at);
  bar.update(1);
  const auto line = bar.line();  // 720 s (and the microseconds since t0 was taken) for one setting
  EXPECT_NE(line.find(" 25% 1/4 720 s/item 12:00 ETA 36:00"), std::string::npos) << line;
  // A new unit forgets: its grid times from its own first report.
  starts.clear();
  EXPECT_EQ(starts.begin("gf seed 0 grid", 2).done, 2);
}

}  // namespace
}  // namespace flipless::cli
