#include "flipless/experiment/run_results.h"

#include <fmt/format.h>

#include <map>

#include "flipless/core/error.h"
#include "flipless/core/json_fields.h"
#include "flipless/experiment/json_file.h"

namespace flipless::experiment {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using Fields = core::JsonFields<InputError>;

std::string child(const Fields& f, const std::string& key) { return f.prefix().empty() ? key : f.prefix() + "." + key; }

CandidateResult read_candidate(const Fields& f) {
  CandidateResult c;
  const auto setting = f.object("setting");
  const auto numbers = setting.object("numbers");
  for (const auto& [key, v] : numbers.value().items()) c.setting.numbers[key] = numbers.number(key.c_str());
  const auto words = setting.object("words");
  for (const auto& [key, v] : words.value().items()) c.setting.words[key] = words.text(key.c_str());
  c.describe = f.text("describe");
  c.validation_accuracy = f.number("validation_accuracy");
  c.validation_nfr = f.number("validation_nfr");
  c.on_par = f.flag("on_par");
  return c;
}

std::vector<CandidateResult> read_candidates(const Fields& f, const char* key) {
  const auto& list = f.at(key);
  if (!list.is_array()) f.fail(key, "expected a list");
  std::vector<CandidateResult> out;
  for (std::size_t i = 0; i < list.size(); ++i) out.push_back(read_candidate(Fields(list[i], f.file(), fmt::format("{}[{}]", child(f, key), i))));
  return out;
}

template <typename T>
void put(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

// The CPU threads a model or unit ran on; absent in files written before 2026-12-02.
std::optional<std::int64_t> threads(const Fields& f) {
  auto t = f.optional<std::int64_t>("threads", &Fields::integer);
  if (t && *t < 1) f.fail("threads", "expected at least 1 thread");
  return t;
}

}  // namespace

OldModelResult read_old_model_result(const fs::path& path) {
  const auto j = read_json_file(path);
  const Fields f(j, path);
  OldModelResult r;
  r.describe = f.text("describe");
  r.kind = f.text("kind");
  r.seed = f.count("seed");
  r.label_names = f.texts("label_names");
  if (r.label_names.empty()) f.fail("label_names", "expected at least one label");
  r.trained_on = f.count("trained_on");
  r.cross_fit = f.integer("cross_fit");
  r.train_accuracy = f.number("train_accuracy");
  r.validation_accuracy = f.number("validation_accuracy");
  r.dev_accuracy = f.number("dev_accuracy");
  r.train_accuracy_in_sample = f.optional<double>("train_accuracy_in_sample", &Fields::number);
  r.precision = f.optional<std::string>("precision", &Fields::text);
  r.seconds = f.number("seconds");
  r.threads = threads(f);
  return r;
}

UnitResult read_unit_result(const fs::path& path) {
  const auto j = read_json_file(path);
  const Fields f(j, path);
  UnitResult r;
  r.task = f.text("task");
  r.method = f.text("method");
  r.seed = f.count("seed");
  r.precision = f.text("precision");
  r.status = f.optional<std::string>("status", &Fields::text);
  if (r.status) {
    if (*r.status != "not_applicable") f.fail("status", fmt::format("'{}' is not a status a unit has (not_applicable)", *r.status));
    r.reason = f.text("reason");
    return r;
  }
  r.validation_accuracy = f.number("validation_accuracy");
  r.validation_nfr = f.number("validation_nfr");
  r.dev_accuracy = f.number("dev_accuracy");
  r.dev_nfr = f.number("dev_nfr");
  if (f.has("chosen")) r.chosen = read_candidate(f.object("chosen"));
  if (f.has("candidates")) r.candidates = read_candidates(f, "candidates");
  r.reference_validation_accuracy = f.optional<double>("reference_validation_accuracy", &Fields::number);
  r.fallback = f.optional<bool>("fallback", &Fields::flag);
  r.searched_on_seed = f.optional<std::uint64_t>("searched_on_seed", &Fields::count);
  r.dev_accuracy_new_model_alone = f.optional<double>("dev_accuracy_new_model_alone", &Fields::number);
  r.dev_nfr_new_model_alone = f.optional<double>("dev_nfr_new_model_alone", &Fields::number);
  r.gate_steps = f.optional<std::int64_t>("gate_steps", &Fields::integer);
  r.shared_warmup = f.optional<bool>("shared_warmup", &Fields::flag);
  r.size = f.optional<std::int64_t>("size", &Fields::integer);
  r.member_seeds = f.optional<std::vector<std::uint64_t>>("member_seeds", &Fields::counts);
  r.seconds = f.number("seconds");
  r.threads = threads(f);
  return r;
}

CacheExperimentResult read_cache_experiment_result(const fs::path& path) {
  const auto j = read_json_file(path);
  const Fields f(j, path);
  CacheExperimentResult r;
  r.source = path;
  r.temperature = f.number("temperature");
  const auto& rows = f.at("percents");
  if (!rows.is_array()) f.fail("percents", "expected a list");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Fields row(rows[i], path, fmt::format("percents[{}]", i));
    CachePercentResult p;
    p.percent = row.number("percent");
    if (row.has("max_distance") && !row.at("max_distance").is_null()) p.max_distance = row.number("max_distance");
    const auto& draws = row.at("draws");
    if (!draws.is_array()) row.fail("draws", "expected a list");
    for (std::size_t k = 0; k < draws.size(); ++k) {
      const Fields d(draws[k], path, fmt::format("percents[{}].draws[{}]", i, k));
      CacheDrawResult draw;
      draw.cached = d.count("cached");
      draw.near_hits = d.count("near_hits");
      const auto policies = d.object("policies");
      for (const auto& [name, v] : policies.value().items()) {
        const auto policy = policies.object(name.c_str());
        draw.policies[name] = {policy.number("nfr"), policy.number("accuracy")};
      }
      for (const auto& [key, v] : d.value().items()) {
        if (key.size() > 10 && key.compare(key.size() - 10, 10, "_agreement") == 0) draw.agreements[key] = d.number(key.c_str());
      }
      p.draws.push_back(std::move(draw));
    }
    r.percents.push_back(std::move(p));
  }
  return r;
}

const CachePolicyResult& CacheExperimentResult::policy(std::size_t row, std::size_t draw, const std::string& name) const {
  const auto& policies = percents.at(row).draws.at(draw).policies;
  const auto it = policies.find(name);
  if (it == policies.end()) {
    throw InputError(fmt::format("{}: field 'percents[{}].draws[{}].policies.{}': missing (a file from an older flipless: delete it to rerun "
                                 "the cache experiment)", source.string(), row, draw, name));
  }
  return it->second;
}

json to_json(const CandidateResult& c) {
  return {{"setting", {{"numbers", c.setting.numbers}, {"words", c.setting.words}}},
          {"describe", c.describe},
          {"validation_accuracy", c.validation_accuracy},
          {"validation_nfr", c.validation_nfr},
          {"on_par", c.on_par}};
}

json to_json(const OldModelResult& r) {
  json j = {{"describe", r.describe}, {"kind", r.kind}, {"seed", r.seed}, {"label_names", r.label_names}, {"trained_on", r.trained_on},
            {"cross_fit", r.cross_fit}, {"train_accuracy", r.train_accuracy}, {"validation_accuracy", r.validation_accuracy},
            {"dev_accuracy", r.dev_accuracy}, {"seconds", r.seconds}};
  put(j, "train_accuracy_in_sample", r.train_accuracy_in_sample);
  put(j, "precision", r.precision);
  put(j, "threads", r.threads);
  return j;
}

json to_json(const UnitResult& r) {
  json j = {{"task", r.task}, {"method", r.method}, {"seed", r.seed}, {"precision", r.precision}};
  if (r.status) {
    j["status"] = *r.status;
    j["reason"] = r.reason.value_or("");
    return j;
  }
  j["validation_accuracy"] = r.validation_accuracy;
  j["validation_nfr"] = r.validation_nfr;
  j["dev_accuracy"] = r.dev_accuracy;
  j["dev_nfr"] = r.dev_nfr;
  if (r.chosen) j["chosen"] = to_json(*r.chosen);
  if (r.candidates) {
    j["candidates"] = json::array();
    for (const auto& c : *r.candidates) j["candidates"].push_back(to_json(c));
  }
  put(j, "reference_validation_accuracy", r.reference_validation_accuracy);
  put(j, "fallback", r.fallback);
  put(j, "searched_on_seed", r.searched_on_seed);
  put(j, "dev_accuracy_new_model_alone", r.dev_accuracy_new_model_alone);
  put(j, "dev_nfr_new_model_alone", r.dev_nfr_new_model_alone);
  put(j, "gate_steps", r.gate_steps);
  put(j, "shared_warmup", r.shared_warmup);
  put(j, "size", r.size);
  put(j, "member_seeds", r.member_seeds);
  j["seconds"] = r.seconds;
  put(j, "threads", r.threads);
  return j;
}

void write_result(const fs::path& path, const OldModelResult& r) { write_json_file(path, to_json(r)); }
void write_result(const fs::path& path, const UnitResult& r) { write_json_file(path, to_json(r)); }
void write_result(const fs::path& path, const GateDrift& r) {
  write_json_file(path, {{"weight_change", r.weight_change}, {"max_abs_change", r.max_abs_change}, {"output_change", r.output_change},
                         {"output_change_spread", r.output_change_spread}});
}

GateDrift read_gate_drift(const fs::path& path) {
  const auto j = read_json_file(path);
  const Fields f(j, path);
  GateDrift r;
  r.weight_change = f.number("weight_change");
  r.max_abs_change = f.number("max_abs_change");
  r.output_change = f.number("output_change");
  r.output_change_spread = f.number("output_change_spread");
  if (!(r.weight_change >= 0)) f.fail("weight_change", "expected a number >= 0");
  if (!(r.max_abs_change >= 0)) f.fail("max_abs_change", "expected a number >= 0");
  if (!(r.output_change >= 0 && r.output_change <= 1)) f.fail("output_change", "expected a number in [0, 1]");
  if (!(r.output_change_spread >= 0 && r.output_change_spread <= 1)) f.fail("output_change_spread", "expected a number in [0, 1]");
  return r;
}

}  // namespace flipless::experiment
