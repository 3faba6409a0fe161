// The flipless command line. The only place that prints and picks exit codes:
// 0 ok, 1 a check failed (--fail-if), 2 user error (one line on stderr), 70 internal error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "commands.h"
#include "flipless/core/error.h"
#include "flipless/version.h"
#ifdef FLIPLESS_WITH_TORCH
#include "flipless/train/cpu_math.h"
#endif

namespace flipless::cli {
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = s.find(',', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}
}  // namespace flipless::cli

int main(int argc, char** argv) {
#ifdef FLIPLESS_WITH_TORCH
  // Before anything else: OpenBLAS chose its kernels, and libgomp its spin, when they loaded;
  // when OpenBLAS fell back to generic kernels on this CPU, or libgomp's spinning threads would
  // slow OpenBLAS's, this re-executes the program once with the right settings (commands that
  // compute with libtorch only).
  flipless::train::select_blas_kernel_at_startup(argv, argc > 1 && flipless::train::computes_with_torch(argv[1]));
#endif
  CLI::App app{"flipless: measure and reduce regressions when you upgrade a text classifier"};
  app.set_version_flag("--version", std::string(flipless::kVersion));
  app.require_subcommand(1);
  flipless::cli::Runner run;
  flipless::cli::add_compare_command(app, run);
  flipless::cli::add_data_command(app, run);
  flipless::cli::add_ensemble_command(app, run);
  flipless::cli::add_experiment_commands(app, run);
#ifdef FLIPLESS_WITH_CACHE
  flipless::cli::add_cache_commands(app, run);
#endif
#ifdef FLIPLESS_WITH_TORCH
  flipless::cli::add_train_commands(app, run);
#ifdef FLIPLESS_WITH_CACHE
  flipless::cli::add_serve_command(app, run);
#endif
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    return run();
  } catch (const flipless::Error& e) {
    std::fprintf(stderr, "flipless: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "flipless: error: out of memory\n");
    return 70;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flipless: internal error: %s\n", e.what());
    return 70;
  }
}
