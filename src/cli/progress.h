#pragma once
// A terminal progress bar with rate and ETA, drawn on stderr. On a terminal it redraws one line
// at most 10 times a second; otherwise (CI logs, pipes) it prints a line at every quarter, or
// nothing when `log_when_piped` is false (per-step bars whose epoch summary says enough; the
// caller may print line() itself, as `flipless experiment run` does once a minute).
// A bar made after work began (at its first report) is told how much was done before it
// started timing: those items count toward the fraction, not the rate, and until an item has
// been timed the rate and ETA read "-" rather than a number divided by almost no time.
// A bar made again for work it has shown before (BarStarts, below) is also told when that work
// was first reported, and times from there. Slower than one item in 10 s, the rate reads as
// seconds per item ("720 s/item").
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include <fmt/format.h>

namespace flipless::cli {

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressBar(std::string label, std::int64_t total, std::string unit = "it", bool log_when_piped = true, std::int64_t done_before = 0,
              Clock::time_point started = Clock::now())
      : label_(std::move(label)), unit_(std::move(unit)), total_(total), done_before_(done_before), done_(done_before),
        tty_(isatty(STDERR_FILENO) != 0), log_(log_when_piped), start_(started), last_draw_(Clock::now()) {}
  ~ProgressBar() { finish(); }

  // Sets progress to `done` of total, with optional extra text ("loss 0.31").
  void update(std::int64_t done, const std::string& extra = {}) {
    done_ = done;
    extra_ = extra;
    const auto now = Clock::now();
    if (tty_) {
      if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
      last_draw_ = now;
      std::fprintf(stderr, "\r%s\033[K", line().c_str());
    } else {
      const int quarter = total_ > 0 ? static_cast<int>(4 * done / total_) : 4;
      if (!log_ || quarter <= last_quarter_) return;
      last_quarter_ = quarter;
      std::fprintf(stderr, "%s\n", line().c_str());
    }
    std::fflush(stderr);
  }

  bool on_terminal() const { return tty_; }

  // "label [#####...] 45% 140/310 8.2 /s 6:01 ETA 7:20  loss 0.41"
  std::string line() const { return line_at(std::chrono::duration<double>(Clock::now() - start_).count()); }

  // line() as it reads `elapsed` seconds after the bar was made.
  std::string line_at(double elapsed) const {
    const std::int64_t timed = done_ - done_before_;
    const bool measured = timed > 0 && elapsed > 0;
    const double rate = measured ? static_cast<double>(timed) / elapsed : 0;
    const double frac = total_ > 0 ? std::clamp(static_cast<double>(done_) / static_cast<double>(total_), 0.0, 1.0) : 1.0;
    const int width = 24, filled = static_cast<int>(frac * width);
    auto clock = [](double s) { return fmt::format("{}:{:02}", static_cast<long>(s) / 60, static_cast<long>(s) % 60); };
    const auto rate_text = !measured    ? fmt::format("- {}/s", unit_)
                           : rate >= 0.1 ? fmt::format("{:.1f} {}/s", rate, unit_)
                                         : fmt::format("{:.0f} s/{}", 1 / rate, unit_.empty() ? "item" : unit_);
    const auto eta_text = measured ? clock(static_cast<double>(std::max<std::int64_t>(total_ - done_, 0)) / rate) : std::string("-");
    return fmt::format("{:<22} [{}{}] {:3.0f}% {}/{} {} {} ETA {}{}", label_, std::string(static_cast<std::size_t>(filled), '#'),
                       std::string(static_cast<std::size_t>(width - filled), '.'), 100 * frac, done_, total_, rate_text, clock(elapsed),
                       eta_text, extra_.empty() ? "" : "  " + extra_);
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    if (tty_) std::fprintf(stderr, "\r%s\033[K\n", line().c_str());
  }

 private:
  std::string label_, unit_, extra_;
  std::int64_t total_, done_before_, done_;
  bool tty_;
  bool log_;
  bool finished_ = false;
  int last_quarter_ = 0;
  Clock::time_point start_, last_draw_;
};

// When each label's work was first reported, and how much of it was done then. A view that shows
// one bar at a time (`flipless experiment run`: a grid's bar between its settings' epoch bars)
// makes a label's bar again each time the label comes back; made from begin(), the bar keeps
// timing from the first report, so an hour-long grid gets a rate and an ETA after its first
// setting instead of "-" all the way.
class BarStarts {
 public:
  using Clock = ProgressBar::Clock;
  struct Start {
    Clock::time_point at;
    std::int64_t done = 0;
  };
  // The first report of `label` since clear(): (now, done) if this is it.
  Start begin(const std::string& label, std::int64_t done, Clock::time_point now = Clock::now()) {
    return starts_.try_emplace(label, Start{now, done}).first->second;
  }
  void clear() { starts_.clear(); }

 private:
  std::map<std::string, Start> starts_;
};

}  // namespace flipless::cli
