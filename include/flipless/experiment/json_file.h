#pragma once
// JSON files of a run folder (result.json, report.json): read with the file named in errors,
// written atomically.
#include <filesystem>
#include <nlohmann/json.hpp>

namespace flipless::experiment {

// Throws IoError when unreadable, InputError naming the file when not valid JSON.
nlohmann::json read_json_file(const std::filesystem::path& path);

// Writes `value` indented, through a temporary file and a rename.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& value);

}  // namespace flipless::experiment
