#pragma once
// GLUE task files with their exact column layouts. Quote characters are never special (GLUE
// files hold bare '"'), and every label must be one of the task's labels.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "flipless/core/file.h"
#include "flipless/data/example.h"

namespace flipless::data {

enum class GlueTask { kCola, kSst2, kMrpc, kQqp, kMnli, kQnli, kRte, kWnli };

struct GlueTaskInfo {
  GlueTask task;
  std::string_view name;                     // "sst2"
  std::vector<std::string> label_names;      // in the order Hugging Face's `glue` uses
  bool has_header;                           // CoLA files have none
};

// Looks a task up by name ("sst2", "sst-2", "SST-2", "mnli", ...). Throws ConfigError for
// unknown names and for STS-B, which is regression, not classification.
const GlueTaskInfo& glue_task(std::string_view name);
const GlueTaskInfo& glue_task(GlueTask task);

// Parses one GLUE TSV file of `task`.
Dataset read_glue(const core::InputFile& file, GlueTask task);
Dataset read_glue_file(const std::filesystem::path& path, GlueTask task);

}  // namespace flipless::data
