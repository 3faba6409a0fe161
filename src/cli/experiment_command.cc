// flipless experiment check/run/report, and flipless demo (the README's main job).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <memory>

#include "commands.h"
#include "flipless/core/error.h"
#include "flipless/data/registry.h"
#include "flipless/experiment/config.h"
#include "flipless/experiment/report.h"
#include "progress.h"
#ifdef FLIPLESS_WITH_TORCH
#include "flipless/runner/runner.h"
#endif

namespace flipless::cli {

namespace {

namespace fs = std::filesystem;

struct ExperimentArgs {
  std::string config;
  std::string out;
  std::string cache;
  int threads = 0;
  std::string device;
  std::string precision;
  int bootstrap = 2000;
  std::vector<std::string> only;  // experiment run --only
  std::vector<std::uint64_t> seeds;  // experiment run --seeds
};

int print_report(const fs::path& run, int bootstrap) {
  experiment::ReportOptions options;
  options.bootstrap = bootstrap;
  const auto files = experiment::write_experiment_report(run, options);
  std::printf("%s\nreport: %s\n        %s\n        %s\n", files.table.c_str(), fs::absolute(files.html).c_str(), files.markdown.c_str(),
              files.json.c_str());
  return 0;
}

#ifdef FLIPLESS_WITH_TORCH
// Shipped configs: configs/ in a source tree, share/flipless/configs in an install.
fs::path shipped_config(const std::string& name) {
  const auto data = data::bundled_data_dir();
  for (const auto& dir : {data.parent_path() / "configs", data.parent_path().parent_path() / "configs"}) {
    if (fs::exists(dir / name)) return dir / name;
  }
  throw IoError(fmt::format("shipped config {} not found beside the bundled data ({})", name, data.string()));
}

// Draws one bar per piece of work, and a line per unit.
class LiveView {
 public:
  runner::RunObserver observer() {
    runner::RunObserver o;
    o.message = [this](const std::string& line) {
      close();
      std::fprintf(stderr, "%s\n", line.c_str());
    };
    o.on_unit = [this](const runner::UnitInfo& u, bool skipped) {
      close();
      starts_.clear();
      if (skipped) {
        ++skipped_;
        return;
      }
      if (skipped_ > 0) std::fprintf(stderr, "(%zu finished units skipped)\n", skipped_);
      skipped_ = 0;
      std::fprintf(stderr, "[%zu/%zu] %s %s seed %llu (%zu left after it)\n", u.index, u.total, u.task.c_str(), u.method.c_str(),
                   static_cast<unsigned long long>(u.seed), u.total - u.index);
    };
    o.on_progress = [this](const std::string& what, std::int64_t done, std::int64_t total, const std::string& detail) {
      if (!bar_ || what != what_) {
        close();
        what_ = what;
        const auto start = starts_.begin(what, done);  // its first report, in this unit: what was done then was not timed
        bar_ = std::make_unique<ProgressBar>(what, total, "", false, start.done, start.at);
      }
      bar_->update(done, detail);
      // In a log (stderr not a terminal) the bars stay silent; a line a minute shows a long run
      // is alive and how fast it goes.
      const auto now = std::chrono::steady_clock::now();
      if (!bar_->on_terminal() && now - last_logged_ >= std::chrono::minutes(1)) {
        last_logged_ = now;
        std::fprintf(stderr, "      %s\n", bar_->line().c_str());
      }
    };
    o.on_unit_done = [this](const runner::UnitInfo& u, double seconds, const std::string& summary) {
      close();
      starts_.clear();
      std::fprintf(stderr, "      %s %s seed %llu: %s (%.1fs)\n", u.task.c_str(), u.method.c_str(), static_cast<unsigned long long>(u.seed),
                   summary.c_str(), seconds);
    };
    return o;
  }
  void close() {
    if (bar_) bar_->finish();
    bar_.reset();
    what_.clear();
  }
  std::size_t skipped() const { return skipped_; }

 private:
  std::unique_ptr<ProgressBar> bar_;
  BarStarts starts_;  // a grid's bar, made again after each setting's epochs, times from its first report
  std::string what_;
  std::size_t skipped_ = 0;
  std::chrono::steady_clock::time_point last_logged_ = std::chrono::steady_clock::now();
};

int run_and_report(const fs::path& config_path, const ExperimentArgs& a, const std::string& default_out) {
  const auto config = experiment::load_experiment(config_path);
  const fs::path out = a.out.empty() ? fs::path(default_out.empty() ? "runs/" + config.name : default_out) : fs::path(a.out);
  runner::RunOptions options;
  options.out = out;
  options.feature_cache = a.cache;
  options.threads = a.threads;
  options.device = a.device;
  options.precision = a.precision;
  options.only = a.only;
  options.seeds = a.seeds;
  LiveView view;
  const auto units = runner::plan_units(config);
  std::fprintf(stderr, "experiment %s: %zu tasks, %zu methods, %zu seeds: %zu units into %s\n", config.name.c_str(), config.tasks.size(),
               config.methods.size(), config.seeds.size(), units.size(), out.c_str());
  const auto summary = runner::run_experiment(config, options, view.observer());
  view.close();
  if (view.skipped() > 0) std::fprintf(stderr, "(%zu finished units skipped)\n", view.skipped());
  std::fprintf(stderr, "%zu units: %zu run, %zu already done, %.0fs\n", summary.units, summary.ran, summary.skipped, summary.seconds);
  if (summary.left > 0) std::fprintf(stderr, "%zu units outside --only/--seeds (or waiting for the first seed's search) left for a later run\n", summary.left);
  std::fprintf(stderr, "\n");
  return print_report(out, a.bootstrap);
}
#endif

}  // namespace

void add_experiment_commands(CLI::App& app, Runner& run) {
  auto a = std::make_shared<ExperimentArgs>();
  CLI::App* cmd = app.add_subcommand("experiment", "Experiments from YAML configs: check, run (resumable), report");
  cmd->require_subcommand(1);
  CLI::App* check = cmd->add_subcommand("check", "Validate a config and list its units");
  check->add_option("config", a->config, "Experiment YAML")->required();
  check->callback([&run, a] {
    run = [a] {
      const auto c = experiment::load_experiment(a->config);
      std::printf("%s: %s is valid: %zu tasks, seeds [%s], methods:", a->config.c_str(), c.name.c_str(), c.tasks.size(),
                  fmt::format("{}", fmt::join(c.seeds, ", ")).c_str());
      for (const auto& m : c.methods) std::printf(" %s (%zu settings)", m.name.c_str(), experiment::settings_of(m).size());
      if (c.cache_experiment.enabled()) {
        std::printf("; cache experiment at %s%% cached, %d draws", fmt::format("{}", fmt::join(c.cache_experiment.percents, "/")).c_str(),
                    c.cache_experiment.draws);
      }
      if (c.ensemble_members == "other_seeds") std::printf("; ensemble members: the other seeds' vanilla models, then shared extra ones");
      std::printf("\n");
      return 0;
    };
  });
#ifdef FLIPLESS_WITH_TORCH
  CLI::App* run_cmd = cmd->add_subcommand("run", "Train the old model once, then every method x seed; finished units are skipped");
  run_cmd->add_option("config", a->config, "Experiment YAML (configs/ has the shipped ones)")->required();
  run_cmd->add_option("--out", a->out, "Run folder (default runs/NAME)");
  run_cmd->add_option("--cache", a->cache, "Frozen-feature cache folder (default ~/.cache/flipless/features)");
  run_cmd->add_option("--threads", a->threads, "CPU threads (0: the config's, else all cores)")->capture_default_str();
  run_cmd->add_option("--device", a->device, "Where torch models run: cpu, cuda, cuda:N, auto (default: the config's, else cpu)");
  run_cmd->add_option("--precision", a->precision, "fp32, bf16 (autocast), fp16 (autocast + loss scaling, GPU) (default: the config's, else fp32)");
  run_cmd->add_option("--bootstrap", a->bootstrap, "Bootstrap resamples in the report")->capture_default_str();
  run_cmd->add_option("--only", a->only, "Run only these methods' units (comma-separated); the others are left for a later run")
      ->delimiter(',');
  run_cmd->add_option("--seeds", a->seeds,
                      "Run only these seeds' units (comma-separated), e.g. to train seeds side by side in copies of the run folder; "
                      "with search: first_seed a later seed waits for the first seed's search")
      ->delimiter(',')
      ->check(CLI::Validator(
          [](std::string& v) {
            const bool digits = !v.empty() && std::all_of(v.begin(), v.end(), [](unsigned char ch) { return std::isdigit(ch) != 0; });
            return digits ? std::string() : "a seed is a whole number >= 0, not '" + v + "'";
          },
          "SEED"));
  run_cmd->callback([&run, a] { run = [a] { return run_and_report(a->config, *a, ""); }; });
#endif
  CLI::App* report = cmd->add_subcommand("report", "Tables, charts and HTML/Markdown/JSON from a run folder's saved results");
  report->add_option("run_dir", a->out, "Run folder")->required();
  report->add_option("--bootstrap", a->bootstrap, "Bootstrap resamples")->capture_default_str();
  report->callback([&run, a] { run = [a] { return print_report(a->out, a->bootstrap); }; });

#ifdef FLIPLESS_WITH_TORCH
  auto d = std::make_shared<ExperimentArgs>();
  CLI::App* demo = app.add_subcommand(
      "demo", "An upgrade on bundled SST-2 (fastText on 2,000 sentences -> frozen MiniLM-L6 on 8,000), every method, 3 seeds; prints the table and the report's path");
  demo->add_option("--out", d->out, "Run folder")->capture_default_str();
  demo->add_option("--config", d->config, "Another experiment instead of the shipped configs/demo.yaml");
  demo->add_option("--cache", d->cache, "Frozen-feature cache folder (default ~/.cache/flipless/features)");
  demo->add_option("--threads", d->threads, "CPU threads (0: all cores)")->capture_default_str();
  demo->add_option("--device", d->device, "Where torch models run: cpu, cuda, cuda:N, auto")->capture_default_str();
  demo->callback([&run, d] {
    run = [d] { return run_and_report(d->config.empty() ? shipped_config("demo.yaml") : fs::path(d->config), *d, "runs/demo"); };
  });
#endif
}

}  // namespace flipless::cli
