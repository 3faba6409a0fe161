#pragma once
// Prediction files: what `flipless compare` reads and `flipless predict` writes.
//
// JSON Lines, one object per example:
//   {"id": "ex1", "label": 1, "pred": 0}
//   {"id": "ex2", "label": "positive", "probs": [0.1, 0.9]}
//   {"id": "ex3", "logits": [-1.2, 2.3]}
// CSV with a header: id, optional label, and pred, or probs / logits as a JSON array text
// ("[0.1, 0.9]"), or one column per class named prob_0, prob_1, ... / logit_0, logit_1, ...
//
// Accepted spellings: id | example_id | idx | guid; label | y_true | gold | true_label;
// pred | prediction | predicted_label | y_pred; probs | probabilities | prob; logits.
// Labels and preds are integers (class indices) or label names; when a row has both `pred` and
// scores, `pred` is the prediction and the scores give its confidence. Each row must carry
// the same kind of prediction and the same number of scores.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "flipless/core/file.h"

namespace flipless::data {

enum class ScoreKind { kNone, kProbs, kLogits };

struct PredictionFile {
  // A label value as stored: >= 0 is a class index; < 0 is -(1 + i) for tokens[i], a label
  // written as a name (resolved against a label set later); kMissing: no label on that row.
  static constexpr std::int32_t kMissing = std::numeric_limits<std::int32_t>::min();

  std::string source;
  std::vector<std::string> ids;        // (n,)
  std::vector<std::int32_t> preds;     // (n,) encoded as above
  std::vector<std::int32_t> labels;    // (n,) encoded as above; empty when no row has a label
  std::vector<std::string> tokens;     // label names seen in the file, in first-seen order
  ScoreKind score_kind = ScoreKind::kNone;
  std::size_t num_scores = 0;          // k, the width of probs/logits; 0 with kNone
  std::vector<float> confidence;       // (n,) max softmax probability; empty with kNone
  std::vector<float> scores;           // (n, k) row-major, only with keep_scores
  std::vector<std::uint32_t> lines;    // (n,) 1-based line of each row, for messages
  std::vector<float> gates;            // (n,) Gated Fusion's "gate" (JSONL) when every row has one, else empty
  std::size_t dim = 0;                 // embedding width, only with keep_embeddings
  std::vector<float> embeddings;       // (n, dim) JSONL "embedding" arrays, only with keep_embeddings

  std::size_t size() const { return ids.size(); }
};

struct PredictionReadOptions {
  bool keep_scores = false;      // keep the full (n, k) probs/logits, not just the confidence
  bool keep_embeddings = false;  // keep JSONL "embedding" arrays; then every row needs one, all the same width
};

// Parses a prediction file in memory; the format comes from the source's extension (.csv, else
// JSON Lines). Throws InputError naming `source:line` and the field.
PredictionFile read_predictions(const core::InputFile& file, const PredictionReadOptions& options = {});
PredictionFile read_predictions_file(const std::filesystem::path& path, const PredictionReadOptions& options = {});

// The file's scores as logits (n, k): logits as they are, probabilities as log-probabilities.
// Throws InputError when the file gives only predicted labels.
std::vector<float> score_logits(const PredictionFile& file);

// The class index of row `row`'s true label against `label_names` (a name matches first, else
// a class index), or -1 when the row has none. Throws InputError naming the line otherwise.
std::int32_t label_index(const PredictionFile& file, std::size_t row, const std::vector<std::string>& label_names);

// Rows to write: logits (n, k) and optional embeddings (n, d), row-major.
struct PredictionRows {
  std::vector<std::string> ids;          // (n,)
  std::vector<std::int32_t> labels;      // (n,) class indices, or empty; -1 for unlabelled rows
  std::vector<std::string> label_names;  // written as the label value when given
  std::size_t num_labels = 0;
  std::vector<float> logits;             // (n, num_labels)
  std::size_t dim = 0;
  std::vector<float> embeddings;         // (n, dim), or empty
  std::vector<float> gates;              // (n,) Gated Fusion gate values, or empty
  std::vector<std::int32_t> preds;       // (n,) predictions when not the argmax of logits (votes), or empty
};

// Writes JSON Lines {"id", "label", "pred", "logits", "embedding", "gate"} atomically; the
// file reads back with read_predictions and `flipless compare`.
void write_predictions(const std::filesystem::path& path, const PredictionRows& rows);

}  // namespace flipless::data
