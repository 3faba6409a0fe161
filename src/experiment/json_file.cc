#include "flipless/experiment/json_file.h"

#include <fmt/format.h>

#include "flipless/core/error.h"
#include "flipless/core/file.h"

namespace flipless::experiment {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  const auto file = core::InputFile::open(path);
  try {
    return nlohmann::json::parse(file.bytes());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

void write_json_file(const std::filesystem::path& path, const nlohmann::json& value) {
  core::write_file_atomic(path, value.dump(2) + "\n");
}

}  // namespace flipless::experiment
