#pragma once
// A terminal progress bar with rate and ETA, drawn on stderr. On a terminal it redraws one line
// at most 10 times a second; otherwise (CI logs, pipes) it prints a line at every quarter, or
// nothing when `log_when_piped` is false (per-step bars whose epoch summary says enough; the
// caller may print line() itself, as `flipless experiment run` does once a minute).
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace flipless::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total, std::string unit = "it", bool log_when_piped = true)
      : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(isatty(STDERR_FILENO) != 0), log_(log_when_piped),
        start_(Clock::now()), last_draw_(start_) {}
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
  std::string line() const {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
    const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    const int width = 24, filled = static_cast<int>(frac * width);
    const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
    auto clock = [](double s) { return fmt::format("{}:{:02}", static_cast<long>(s) / 60, static_cast<long>(s) % 60); };
    return fmt::format("{:<22} [{}{}] {:3.0f}% {}/{} {:.1f} {}/s {} ETA {}{}", label_, std::string(static_cast<std::size_t>(filled), '#'),
                       std::string(static_cast<std::size_t>(width - filled), '.'), 100 * frac, done_, total_, rate, unit_,
                       clock(elapsed), clock(eta), extra_.empty() ? "" : "  " + extra_);
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    if (tty_) std::fprintf(stderr, "\r%s\033[K\n", line().c_str());
  }

 private:
  using Clock = std::chrono::steady_clock;

  std::string label_, unit_, extra_;
  std::int64_t total_, done_ = 0;
  bool tty_;
  bool log_;
  bool finished_ = false;
  int last_quarter_ = 0;
  Clock::time_point start_, last_draw_;
};

}  // namespace flipless::cli
