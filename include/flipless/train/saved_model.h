#pragma once
// A trained classifier folder, what `flipless train` writes and `flipless predict` reads:
//
//   flipless_model.json   {"format": "flipless-classifier", "version": 1,
//                          "kind": "frozen-head" | "fine-tuned" | "fasttext",
//                          "label_names": [...], "base_model": PATH, "layers": K,
//                          "pooling": "mean", "max_length": 128, "head": {...}, ...}
//   weights.safetensors   the module's parameters (torch kinds)
//   encoder/              config.json and tokenizer files of the base model (fine-tuned)
//   model.bin             the fastText model (fasttext)
//
// The version is checked on load; unknown formats and versions are refused with the reason.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flipless/models/classifier.h"
#include "flipless/nn/classifier.h"
#include "flipless/train/device.h"

namespace flipless::train {

inline constexpr const char* kModelCardName = "flipless_model.json";

// Saves a torch classifier's parameters and its card (the card must name its kind).
void save_torch_classifier(const std::filesystem::path& dir, nn::ClassifierModule& model, const nlohmann::json& card);

// Writes just the card (kinds whose weights are saved otherwise, like fastText).
void save_model_card(const std::filesystem::path& dir, const nlohmann::json& card);

// Reads and checks a folder's card (format, version, kind, label_names). Throws ModelError naming
// the file and field.
nlohmann::json read_model_card(const std::filesystem::path& dir);

// A card as a type: every field its kind needs to load, checked.
struct ModelCard {
  std::filesystem::path source;  // the card file
  std::string kind;              // frozen-head, fine-tuned or fasttext
  std::vector<std::string> label_names;
  // Torch kinds: the encoder (its folder, the layers kept), inputs cut to max_length tokens, the
  // head; frozen heads pool the encoder's output, fine-tuned encoders may keep their pooler.
  std::string base_model;
  std::int64_t layers = 0;
  std::size_t max_length = 0;
  std::string pooling;  // frozen-head
  bool pooler = false;  // fine-tuned
  nn::HeadConfig head;
  bool lowercase = true;  // fasttext
  nlohmann::json fields;  // the card as written (method, seed, train_data, ... for tools that show them)
};

// The card of a model folder, typed. Throws ModelError naming the file and the field (a missing
// field, a wrong type, an unknown kind).
ModelCard read_typed_model_card(const std::filesystem::path& dir);

// Loads any saved kind as a Classifier; torch kinds run on `device` in `precision` (fastText on
// the CPU; frozen encoders compute their features in float32). A folder without a card that
// holds a Hugging Face *ForSequenceClassification checkpoint loads as it is (its own head,
// inputs truncated to 128 tokens).
std::unique_ptr<models::Classifier> load_classifier(const std::filesystem::path& dir, torch::Device device = torch::kCPU,
                                                    Precision precision = Precision::kFloat32);

// The label names of what load_classifier loads: the card's, or the checkpoint's id2label.
std::vector<std::string> label_names_of_model(const std::filesystem::path& dir);

}  // namespace flipless::train
