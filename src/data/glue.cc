#include "flipless/data/glue.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "builder.h"
#include "delimited.h"
#include "flipless/core/error.h"

namespace flipless::data {

namespace {

// Column layout of one task's files: header names, tried in order (train/dev use the first
// that exists). `id` columns are joined with '-' (MRPC's pair of sentence ids).
struct Layout {
  std::vector<std::vector<std::string_view>> id;  // each alternative: columns joined by '-'
  std::vector<std::string_view> text_a;
  std::vector<std::string_view> text_b;           // empty: single sentence
  std::vector<std::string_view> label;
};

const std::array<GlueTaskInfo, 8>& tasks() {
  static const std::array<GlueTaskInfo, 8> kTasks = {{
      {GlueTask::kCola, "cola", {"0", "1"}, false},
      {GlueTask::kSst2, "sst2", {"0", "1"}, true},
      {GlueTask::kMrpc, "mrpc", {"0", "1"}, true},
      {GlueTask::kQqp, "qqp", {"0", "1"}, true},
      {GlueTask::kMnli, "mnli", {"entailment", "neutral", "contradiction"}, true},
      {GlueTask::kQnli, "qnli", {"entailment", "not_entailment"}, true},
      {GlueTask::kRte, "rte", {"entailment", "not_entailment"}, true},
      {GlueTask::kWnli, "wnli", {"0", "1"}, true},
  }};
  return kTasks;
}

Layout layout(GlueTask task) {
  switch (task) {
    case GlueTask::kCola: return {};  // headerless, positional
    case GlueTask::kSst2: return {{}, {"sentence"}, {}, {"label"}};
    case GlueTask::kMrpc: return {{{"#1 ID", "#2 ID"}}, {"#1 String"}, {"#2 String"}, {"Quality"}};
    case GlueTask::kQqp: return {{{"id"}}, {"question1"}, {"question2"}, {"is_duplicate"}};
    case GlueTask::kMnli: return {{{"pairID"}, {"index"}}, {"sentence1"}, {"sentence2"}, {"gold_label"}};
    case GlueTask::kQnli: return {{{"index"}, {"subset_id"}}, {"question"}, {"sentence"}, {"label"}};
    case GlueTask::kRte:
    case GlueTask::kWnli: return {{{"index"}}, {"sentence1"}, {"sentence2"}, {"label"}};
  }
  return {};
}

std::string normalise(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c != '-' && c != '_') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::optional<std::size_t> find_column(const std::vector<std::string>& header, std::string_view name) {
  const auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) return std::nullopt;
  return static_cast<std::size_t>(it - header.begin());
}

std::size_t require_column(const std::vector<std::string>& header, const std::vector<std::string_view>& names,
                           const std::string& source, std::string_view task) {
  for (auto name : names) {
    if (auto i = find_column(header, name)) return *i;
  }
  throw InputError(fmt::format("{}:1: missing column '{}' of a GLUE {} file (the header has: {})", source,
                               names.front(), task, fmt::join(header, ", ")));
}

}  // namespace

const GlueTaskInfo& glue_task(GlueTask task) {
  for (const auto& info : tasks()) {
    if (info.task == task) return info;
  }
  throw ConfigError("unknown GLUE task");
}

const GlueTaskInfo& glue_task(std::string_view name) {
  const std::string key = normalise(name);
  if (key == "stsb") throw ConfigError("GLUE task 'stsb' is regression, not classification");
  for (const auto& info : tasks()) {
    if (info.name == key) return info;
  }
  throw ConfigError(fmt::format("unknown GLUE task '{}' (known: cola, sst2, mrpc, qqp, mnli, qnli, rte, wnli)", name));
}

Dataset read_glue(const core::InputFile& file, GlueTask task) {
  const GlueTaskInfo& info = glue_task(task);
  const std::string& source = file.source();
  if (file.bytes().empty()) throw InputError(fmt::format("{}: file is empty", source));
  detail::DelimitedReader reader(file.bytes(), '\t', /*quoting=*/false);
  detail::DatasetBuilder builder(source, info.label_names, /*labelled=*/true);
  std::vector<std::string> fields;

  if (!info.has_header) {  // CoLA: source, label, original label, sentence
    while (reader.next(fields)) {
      if (fields.size() != 4) {
        throw InputError(fmt::format("{}:{}: expected 4 fields in a GLUE cola file, found {}", source, reader.line(), fields.size()));
      }
      builder.add(reader.line(), {}, std::move(fields[3]), std::nullopt, std::move(fields[1]), {}, "sentence", {}, "label");
    }
    return std::move(builder).finish(source);
  }

  std::vector<std::string> header;
  if (!reader.next(header)) throw InputError(fmt::format("{}: file is empty", source));
  const Layout cols = layout(task);
  std::vector<std::size_t> id_cols;
  std::string id_name;
  for (const auto& alternative : cols.id) {
    std::vector<std::size_t> found;
    for (auto name : alternative) {
      if (auto i = find_column(header, name)) found.push_back(*i);
    }
    if (found.size() == alternative.size()) {
      id_cols = found;
      id_name = fmt::format("{}", fmt::join(alternative, "+"));
      break;
    }
  }
  const std::size_t text = require_column(header, cols.text_a, source, info.name);
  const bool paired = !cols.text_b.empty();
  const std::size_t pair = paired ? require_column(header, cols.text_b, source, info.name) : 0;
  const std::size_t label = require_column(header, cols.label, source, info.name);
  while (reader.next(fields)) {
    if (fields.size() != header.size()) {
      throw InputError(fmt::format("{}:{}: expected {} fields as in the header, found {}", source, reader.line(),
                                   header.size(), fields.size()));
    }
    std::string id;
    for (std::size_t k = 0; k < id_cols.size(); ++k) {
      if (k > 0) id += '-';
      id += fields[id_cols[k]];
    }
    builder.add(reader.line(), std::move(id), std::move(fields[text]),
                paired ? std::optional<std::string>(std::move(fields[pair])) : std::nullopt, std::move(fields[label]),
                id_name, header[text], paired ? header[pair] : std::string(), header[label]);
  }
  return std::move(builder).finish(source);
}

Dataset read_glue_file(const std::filesystem::path& path, GlueTask task) {
  return read_glue(core::InputFile::open(path), task);
}

}  // namespace flipless::data
