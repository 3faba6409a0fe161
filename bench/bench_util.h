#pragma once
// Shared by the Google Benchmark programs in bench/: checked parsing of each program's own flags
// (what benchmark::Initialize leaves in argv), and a console reporter that keeps each
// benchmark's time and counters so a program can print the ratios of what it measured side by
// side in the same run.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flipless::bench {

// A program's own "--name value" flags, each name at most once; an unknown name, a name without
// a value or a value that is not a count prints the usage and exits 2.
class Flags {
 public:
  Flags(int argc, char** argv, std::vector<std::string_view> names, std::string usage) : usage_(std::move(usage)) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view name = argv[i];
      bool known = false;
      for (const auto n : names) known = known || n == name;
      if (!known) fail(std::string("unknown option '") + argv[i] + "'");
      if (i + 1 >= argc) fail(std::string("option '") + argv[i] + "' needs a value");
      values_[std::string(name)] = argv[++i];
    }
  }

  std::optional<std::string> text(const std::string& name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  std::string text(const std::string& name, std::string fallback) const { return text(name).value_or(std::move(fallback)); }

  // A positive whole number.
  std::size_t count(const std::string& name, std::size_t fallback) const {
    const auto value = text(name);
    return value ? parse_count(name, *value) : fallback;
  }

  // A comma-separated list of positive whole numbers.
  std::vector<std::size_t> counts(const std::string& name, std::vector<std::size_t> fallback) const {
    const auto value = text(name);
    if (!value) return fallback;
    std::vector<std::size_t> out;
    std::string_view rest = *value;
    while (true) {
      const auto comma = rest.find(',');
      out.push_back(parse_count(name, rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return out;
  }

  [[noreturn]] void fail(const std::string& why) const {
    std::fprintf(stderr, "%s\nusage: %s\n", why.c_str(), usage_.c_str());
    std::exit(2);
  }

 private:
  std::size_t parse_count(const std::string& name, std::string_view text) const {
    std::size_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v == 0) {
      fail("option '" + name + "': '" + std::string(text) + "' is not a positive whole number");
    }
    return v;
  }

  std::string usage_;
  std::map<std::string, std::string> values_;
};

// The console reporter, keeping each benchmark's real time per iteration (the median when it was
// repeated) and counters by the name it was registered with.
class KeepingReporter : public benchmark::ConsoleReporter {
 public:
  KeepingReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (!single && !median) continue;
      Kept& kept = kept_[run.run_name.function_name];
      kept.seconds = run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
      for (const auto& [name, counter] : run.counters) kept.counters[name] = counter.value;
    }
  }

  // Seconds per iteration of the benchmark registered as `name`, if it ran.
  std::optional<double> seconds(const std::string& name) const {
    const auto it = kept_.find(name);
    if (it == kept_.end()) return std::nullopt;
    return it->second.seconds;
  }
  std::optional<double> counter(const std::string& name, const std::string& counter) const {
    const auto it = kept_.find(name);
    if (it == kept_.end()) return std::nullopt;
    const auto c = it->second.counters.find(counter);
    if (c == it->second.counters.end()) return std::nullopt;
    return c->second;
  }

 private:
  struct Kept {
    double seconds = 0.0;
    std::map<std::string, double> counters;
  };
  std::map<std::string, Kept> kept_;
};

}  // namespace flipless::bench
