#include <gtest/gtest.h>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/data/predictions.h"

namespace flipless::data {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

PredictionFile parse(const std::string& name, const std::string& text, PredictionReadOptions options = {}) {
  return read_predictions(core::InputFile::from_string(text, name), options);
}

TEST(Predictions, JsonlWithLabelsProbsAndLogits) {
  const auto labels = parse("p.jsonl", "{\"id\": \"a\", \"label\": 1, \"pred\": 0}\n{\"id\": 7, \"label\": \"1\", \"pred\": \"positive\"}\n");
  EXPECT_EQ(labels.ids, (std::vector<std::string>{"a", "7"}));
  EXPECT_EQ(labels.tokens, (std::vector<std::string>{"0", "1", "positive"}));
  EXPECT_EQ(labels.preds, (std::vector<std::int32_t>{-1, -3}));   // tokens "0", "positive"
  EXPECT_EQ(labels.labels, (std::vector<std::int32_t>{-2, -2}));  // token "1" both times
  EXPECT_EQ(labels.score_kind, ScoreKind::kNone);
  EXPECT_TRUE(labels.confidence.empty());

  const auto probs = parse("p.jsonl", "{\"id\": \"a\", \"probs\": [0.2, 0.8]}\n{\"id\": \"b\", \"probs\": [0.5, 0.5]}\n",
                           {.keep_scores = true});
  EXPECT_EQ(probs.preds, (std::vector<std::int32_t>{1, 0}));  // ties: lowest index
  EXPECT_FLOAT_EQ(probs.confidence[0], 0.8f);
  EXPECT_EQ(probs.scores.size(), 4u);
  EXPECT_TRUE(probs.labels.empty());

  const auto logits = parse("p.jsonl", "{\"example_id\": \"a\", \"logits\": [0.0, 0.0, 1.0986123]}\n");
  EXPECT_EQ(logits.preds, (std::vector<std::int32_t>{2}));
  EXPECT_NEAR(logits.confidence[0], 0.6, 1e-6);  // e^1.0986 / (2 + e^1.0986) = 3/5
  EXPECT_EQ(logits.num_scores, 3u);
}

TEST(Predictions, GateValuesAreKeptWhenEveryRowHasOne) {
  const auto both = parse("p.jsonl", "{\"id\": \"a\", \"logits\": [0, 1], \"gate\": 0.25}\n{\"id\": \"b\", \"logits\": [1, 0], \"gate\": 1}\n");
  EXPECT_EQ(both.gates, (std::vector<float>{0.25f, 1.0f}));
  const auto one = parse("p.jsonl", "{\"id\": \"a\", \"logits\": [0, 1], \"gate\": 0.25}\n{\"id\": \"b\", \"logits\": [1, 0]}\n");
  EXPECT_TRUE(one.gates.empty());
  TempDir dir;
  PredictionRows rows;
  rows.ids = {"x", "y"};
  rows.num_labels = 2;
  rows.logits = {0, 1, 1, 0};
  rows.gates = {0.5f, 0.125f};
  write_predictions(dir.path() / "g.jsonl", rows);
  EXPECT_EQ(read_predictions_file(dir.path() / "g.jsonl").gates, rows.gates);
  // Ids and label names that need escaping come back as they were.
  rows.ids = {"q\"uote\\back", "tab\tnew\nline\x01\xC3\xA9"};
  rows.labels = {0, 1};
  rows.label_names = {"neg \"0\"", "pos/1"};
  write_predictions(dir.path() / "e.jsonl", rows);
  const auto back = read_predictions_file(dir.path() / "e.jsonl");
  EXPECT_EQ(back.ids, rows.ids);
  EXPECT_EQ(back.tokens, (std::vector<std::string>{"pos/1", "neg \"0\""}));  // first seen: row 1 pred, then label
  EXPECT_EQ(std::string(core::InputFile::open(dir.path() / "e.jsonl").bytes().substr(0, 56)), "{\"id\":\"q\\\"uote\\\\back\",\"label\":\"neg \\\"0\\\"\",\"pred\":\"pos/1\"");
}

TEST(Predictions, CsvWithArrayCellsOrColumnFamilies) {
  const auto cells = parse("p.csv", "id,label,probs\na,1,\"[0.3, 0.7]\"\nb,0,\"[0.9,0.1]\"\n");
  EXPECT_EQ(cells.preds, (std::vector<std::int32_t>{1, 0}));
  EXPECT_EQ(cells.labels.size(), 2u);
  const auto family = parse("p.csv", "id,logit_0,logit_1,logit_2\na,1,2,3\nb,3,2,1\n");
  EXPECT_EQ(family.preds, (std::vector<std::int32_t>{2, 0}));
  EXPECT_EQ(family.score_kind, ScoreKind::kLogits);
  const auto preds = parse("p.csv", "idx,y_pred\na,neg\n");
  EXPECT_EQ(preds.tokens, (std::vector<std::string>{"neg"}));
}

// The JSON itself (simdjson): every value of a row is checked, read or not, and each error names
// the column; strings are decoded, numbers keep the text they were written as.
TEST(Predictions, JsonRowsAreCheckedWholeWithTheColumnOfTheProblem) {
  const auto ok = parse("p.jsonl", "{\"id\": \"\\u00e9\\ud83d\\ude00\", \"pred\": 1.50, \"extra\": {\"a\": [null, true, {}]}, \"id\": \"dup\"}\n");
  EXPECT_EQ(ok.ids, (std::vector<std::string>{"\xC3\xA9\xF0\x9F\x98\x80"}));  // the first of two "id" members
  EXPECT_EQ(ok.tokens, (std::vector<std::string>{"1.50"}));
  auto error = [](const std::string& row) { return error_of<InputError>([&] { parse("p.jsonl", row + "\n"); }); };
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1} x"), "p.jsonl:1:24: invalid JSON: unexpected text after the JSON value");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1}}"), "p.jsonl:1:23: invalid JSON: unexpected text after the JSON value");
  EXPECT_EQ(error("{\"id\" \"a\", \"pred\": 1}"), "p.jsonl:1:7: invalid JSON: expected ':'");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1,}"), "p.jsonl:1:23: invalid JSON: expected a string key");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": tru}"), "p.jsonl:1:29: invalid JSON: expected a JSON value");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": [1 2]}"), "p.jsonl:1:32: invalid JSON: expected ',' or ']'");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": \"b\tc\"}"), "p.jsonl:1:31: invalid JSON: control character in string");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": \"b"), "p.jsonl:1:31: invalid JSON: unterminated string");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": \"\\q\"}"), "p.jsonl:1:29: invalid JSON: invalid escape or unpaired surrogate in string");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": \"\xC3\x28\"}"), "p.jsonl:1: field 'x': invalid UTF-8");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 01}"), "p.jsonl:1:21: invalid JSON: invalid number");
  EXPECT_EQ(error("{\"id\": \"a\", \"pred\": 1, \"x\": " + std::string(70, '[') + std::string(70, ']') + "}"),
            "p.jsonl:1:93: invalid JSON: JSON nested too deeply");
  EXPECT_EQ(error("{\"id\": \"a\", \"logits\": [1, \"2\"]}"), "p.jsonl:1: field 'logits': expected an array of numbers");
  EXPECT_EQ(error("{\"id\": \"a\", \"logits\": [1, 2]\n{\"id\": \"b\"}"),
            "p.jsonl:1:29: invalid JSON: unexpected end of the line: unclosed object or array");
  EXPECT_EQ(error_of<InputError>([] { parse("p.csv", "id,probs\na,\"[0.5, 0.5\"\n"); }),
            "p.csv:2: field 'probs': expected a JSON array of numbers: unexpected end of the line: unclosed object or array");
}

TEST(Predictions, BadRowsNameFileLineAndField) {
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", ""); }), "p.jsonl: file is empty");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"pred\": 1}\n"); }), "p.jsonl:1: missing field 'id'");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\"}\n"); }),
            "p.jsonl:1: no prediction: expected a field 'pred', 'probs' or 'logits'");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\", \"probs\": [0.2, 0.8]}\n{\"id\": \"b\", \"probs\": [0.2, 0.3, 0.5]}\n"); }),
            "p.jsonl:2: field 'probs': expected 2 scores as in the first row, found 3");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\", \"probs\": [0.2, 0.9]}\n"); }),
            "p.jsonl:1: field 'probs': probabilities sum to 1.1, not 1");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\", \"logits\": \"1,2\"}\n"); }),
            "p.jsonl:1: field 'logits': expected an array of numbers, found a string");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\", \"pred\": 1}\n{\"id\": \"b\", \"logits\": [1, 2]}\n"); }),
            "p.jsonl:2: field 'logits': this row's kind of prediction differs from the first row's");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"\", \"pred\": 1}\n"); }), "p.jsonl:1: field 'id': empty id");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "[1, 2]\n"); }), "p.jsonl:1: expected a JSON object, found a array");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\", \"pred\": 1e999}\n"); }),
            "p.jsonl:1:21: invalid JSON: number out of range");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "{\"id\": \"a\xFF\", \"pred\": 1}\n"); }),
            "p.jsonl:1: field 'id': invalid UTF-8");
  EXPECT_EQ(error_of<InputError>([] { parse("p.csv", "name,pred\na,1\n"); }), "p.csv:1: missing column 'id' (the header has: name, pred)");
  EXPECT_EQ(error_of<InputError>([] { parse("p.csv", "id,prob_0,prob_1\na,0.5,x\n"); }), "p.csv:2: field 'prob_1': 'x' is not a number");
  EXPECT_EQ(error_of<InputError>([] { parse("p.csv", "id,pred\na,1,2\n"); }), "p.csv:2: expected 2 fields as in the header, found 3");
  EXPECT_EQ(error_of<InputError>([] { parse("p.jsonl", "\n\n"); }), "p.jsonl: no prediction rows");
  // Issue 14, 8: scores are 32-bit floats; 1e39 would become infinity.
  EXPECT_EQ(error_of<InputError>([] {
              parse("p.jsonl", "{\"id\": \"a\", \"logits\": [1, 2]}\n{\"id\": \"b\", \"logits\": [1e39, 0]}\n");
            }),
            "p.jsonl:2: field 'logits': scores must be finite 32-bit floats, found 1e+39");
  EXPECT_EQ(error_of<InputError>([] { parse("p.csv", "id,logit_0,logit_1\na,-1e39,0\n"); }),
            "p.csv:2: field 'logit_*': scores must be finite 32-bit floats, found -1e+39");
  PredictionReadOptions with_embeddings;
  with_embeddings.keep_embeddings = true;
  EXPECT_EQ(error_of<InputError>(
                [&] { parse("p.jsonl", "{\"id\": \"a\", \"pred\": 1, \"embedding\": [1, 4e38]}\n", with_embeddings); }),
            "p.jsonl:1: field 'embedding': expected finite numbers within 32-bit float range");
}

}  // namespace
}  // namespace flipless::data
