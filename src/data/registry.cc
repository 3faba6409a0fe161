#include "flipless/data/registry.h"

#include <unistd.h>

#include <cstdlib>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flipless/core/error.h"
#include "flipless/data/glue.h"

namespace flipless::data {

namespace {

constexpr std::string_view kBundledTasks[] = {"sst2", "mrpc"};
constexpr std::string_view kBundledSplits[] = {"train", "dev"};

std::filesystem::path executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

bool is_glue_task(std::string_view name) {
  try {
    glue_task(name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

std::filesystem::path bundled_data_dir() {
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv("FLIPLESS_DATA_DIR"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  } else {
    if (auto dir = executable_dir(); !dir.empty()) candidates.push_back(dir.parent_path() / "share" / "flipless" / "data");
#ifdef FLIPLESS_SOURCE_DATA_DIR
    candidates.emplace_back(FLIPLESS_SOURCE_DATA_DIR);
#endif
  }
  for (const auto& dir : candidates) {
    if (std::filesystem::is_directory(dir / "sst2")) return dir;
  }
  std::vector<std::string> tried;
  for (const auto& dir : candidates) tried.push_back(dir.string());
  throw IoError(fmt::format("bundled data not found (looked in: {}); set FLIPLESS_DATA_DIR", fmt::join(tried, ", ")));
}

std::vector<std::string> bundled_dataset_names() {
  std::vector<std::string> names;
  for (auto task : kBundledTasks) {
    for (auto split : kBundledSplits) names.push_back(fmt::format("{}:{}", task, split));
  }
  return names;
}

Dataset load_dataset(std::string_view spec, const ColumnSpec& columns) {
  if (spec.empty()) throw ConfigError("empty dataset name");
  const std::size_t colon = spec.find(':');
  if (colon != std::string_view::npos && is_glue_task(spec.substr(0, colon))) {
    const GlueTaskInfo& task = glue_task(spec.substr(0, colon));
    const std::string_view rest = spec.substr(colon + 1);
    // A bare split name ("dev", "test") asks for bundled data; anything else is a path.
    const bool split_name = rest.find_first_of("/.") == std::string_view::npos;
    for (auto split : kBundledSplits) {
      if (rest != split) continue;
      for (auto bundled : kBundledTasks) {
        if (bundled != task.name) continue;
        Dataset ds = read_glue_file(bundled_data_dir() / bundled / fmt::format("{}.tsv.gz", split), task.task);
        ds.name = fmt::format("{}:{}", task.name, split);
        return ds;
      }
    }
    if (split_name) {
      throw ConfigError(fmt::format("'{}' is not bundled (bundled: {}); give a path instead, e.g. {}:/path/to/{}.tsv",
                                    spec, fmt::join(bundled_dataset_names(), ", "), task.name, rest));
    }
    Dataset ds = read_glue_file(std::filesystem::path(rest), task.task);
    ds.name = std::string(spec);
    return ds;
  }
  return read_table_file(std::filesystem::path(spec), columns);
}

}  // namespace flipless::data
