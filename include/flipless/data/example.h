#pragma once
// The one in-memory form of a text-classification dataset, whatever file it came from.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flipless::data {

// One example. `label` indexes Dataset::label_names, or is kNoLabel for unlabelled data.
struct TextExample {
  static constexpr std::int32_t kNoLabel = -1;
  std::string id;  // the file's id, or core::content_id of the text(s); never a row number
  std::string text_a;
  std::optional<std::string> text_b;
  std::int32_t label = kNoLabel;
};

struct Dataset {
  std::string name;                      // "sst2:dev", or the path it was read from
  std::vector<std::string> label_names;  // label id -> name, in a fixed order
  std::vector<TextExample> examples;     // file order

  std::size_t size() const { return examples.size(); }
  std::size_t num_labels() const { return label_names.size(); }
  bool has_text_pair() const { return !examples.empty() && examples.front().text_b.has_value(); }
  bool has_labels() const { return !examples.empty() && examples.front().label != TextExample::kNoLabel; }
  // The label of each example, in order (shape (n,)).
  std::vector<std::int32_t> labels() const;
  // A map from id to position in `examples`.
  std::unordered_map<std::string_view, std::size_t> index_by_id() const;
  // Number of examples of each label (shape (num_labels,)).
  std::vector<std::size_t> label_counts() const;
};

}  // namespace flipless::data
