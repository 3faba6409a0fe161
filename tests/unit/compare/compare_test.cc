#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "flipless/compare/compare.h"
#include "flipless/core/error.h"
#include "flipless/core/hash.h"
#include "flipless/data/registry.h"
#include "flipless/report/compare_report.h"

namespace flipless::compare {
namespace {

using flipless::testing::error_of;
using metrics::Metric;

data::PredictionFile parse(const std::string& name, const std::string& text) {
  return data::read_predictions(core::InputFile::from_string(text, name));
}

// The hand-checked 8-example fixture of metrics_test as prediction files, rows shuffled in new.
const char* kOld =
    "{\"id\":\"e0\",\"label\":0,\"pred\":0}\n{\"id\":\"e1\",\"label\":1,\"pred\":1}\n{\"id\":\"e2\",\"label\":2,\"pred\":2}\n"
    "{\"id\":\"e3\",\"label\":0,\"pred\":0}\n{\"id\":\"e4\",\"label\":1,\"pred\":2}\n{\"id\":\"e5\",\"label\":2,\"pred\":2}\n"
    "{\"id\":\"e6\",\"label\":0,\"pred\":1}\n{\"id\":\"e7\",\"label\":1,\"pred\":1}\n";
const char* kNew =
    "{\"id\":\"e7\",\"pred\":1}\n{\"id\":\"e6\",\"pred\":0}\n{\"id\":\"e5\",\"pred\":2}\n{\"id\":\"e4\",\"pred\":0}\n"
    "{\"id\":\"e3\",\"pred\":1}\n{\"id\":\"e2\",\"pred\":2}\n{\"id\":\"e1\",\"pred\":2}\n{\"id\":\"e0\",\"pred\":0}\n";

TEST(Compare, JoinsByIdNotByPosition) {
  const Comparison c = compare_predictions(parse("old.jsonl", kOld), parse("new.jsonl", kNew), nullptr);
  EXPECT_EQ(c.summary.n, 8u);
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kNfr), 0.25);
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kBtc), 4.0 / 6);
  EXPECT_EQ(c.label_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(c.labels_from, "old.jsonl");
  ASSERT_EQ(c.top_negative_flips.size(), 2u);
  EXPECT_EQ(c.top_negative_flips[0].id, "e1");
  EXPECT_TRUE(c.by_length.empty());
  EXPECT_TRUE(c.by_old_confidence.empty());
}

TEST(Compare, RefusesMissingExtraAndDuplicateIds) {
  const auto old_file = parse("old.jsonl", "{\"id\":\"a\",\"label\":0,\"pred\":0}\n{\"id\":\"b\",\"label\":1,\"pred\":1}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(old_file, parse("new.jsonl", "{\"id\":\"a\",\"pred\":0}\n"), nullptr); }),
            "old.jsonl:2: field 'id': id 'b' is not in new.jsonl (1 ids missing there)");
  EXPECT_EQ(error_of<InputError>([&] {
              compare_predictions(old_file, parse("new.jsonl", "{\"id\":\"a\",\"pred\":0}\n{\"id\":\"c\",\"pred\":0}\n"), nullptr);
            }),
            "new.jsonl:2: field 'id': id 'c' is not in old.jsonl");
  EXPECT_EQ(error_of<InputError>([&] {
              compare_predictions(old_file, parse("new.jsonl", "{\"id\":\"a\",\"pred\":0}\n{\"id\":\"a\",\"pred\":1}\n"), nullptr);
            }),
            "new.jsonl:2: field 'id': duplicate id 'a' (first on line 1)");
  const auto dup_old = parse("old.jsonl", "{\"id\":\"a\",\"label\":0,\"pred\":0}\n{\"id\":\"a\",\"label\":1,\"pred\":1}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(dup_old, old_file, nullptr); }),
            "old.jsonl:2: field 'id': duplicate id 'a' (first on line 1)");
}

TEST(Compare, LabelsMustExistAndAgree) {
  const auto no_labels = parse("old.jsonl", "{\"id\":\"a\",\"pred\":0}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(no_labels, no_labels, nullptr); }),
            "old.jsonl: no true labels: add a 'label' field to the prediction files or pass --data");
  const auto disagree = parse("new.jsonl", "{\"id\":\"a\",\"label\":1,\"pred\":0}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(parse("old.jsonl", "{\"id\":\"a\",\"label\":0,\"pred\":0}\n"), disagree, nullptr); }),
            "new.jsonl:1: field 'label': label '1' of id 'a' disagrees with old.jsonl ('0')");
}

TEST(Compare, ResolvesLabelNamesAgainstScores) {
  const auto old_file = parse("old.jsonl", "{\"id\":\"a\",\"label\":\"pos\",\"pred\":\"neg\"}\n{\"id\":\"b\",\"label\":\"neg\",\"pred\":\"neg\"}\n");
  const auto new_file = parse("new.jsonl", "{\"id\":\"a\",\"probs\":[0.1,0.9]}\n{\"id\":\"b\",\"probs\":[0.8,0.2]}\n");
  EXPECT_THROW(compare_predictions(old_file, new_file, nullptr), InputError);  // which column is "pos"?
  CompareOptions options;
  options.label_names = {"neg", "pos"};
  const Comparison c = compare_predictions(old_file, new_file, nullptr, options);
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kPfr), 0.5);
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kNewAccuracy), 1.0);
  options.label_names = {"neg", "pos", "mixed"};
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(old_file, new_file, nullptr, options); }),
            "new.jsonl: rows have 2 scores but the label set has 3 labels [neg, pos, mixed]");
  options.label_names = {"negative", "positive"};
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(old_file, new_file, nullptr, options); }),
            "old.jsonl:1: field 'pred': label 'neg' is not in the label set [negative, positive]; pass "
            "--unknown-preds-wrong to count "
            "such predictions as wrong");
}

// Issue 14, 15: a predicted label the task does not have is an error naming it and its line
// (or, when asked, a prediction that is always wrong), not a class of its own at 0% accuracy.
TEST(Compare, APredictedLabelOutsideTheTaskIsAnError) {
  const auto old_file =
      parse("old.jsonl", "{\"id\":\"a\",\"label\":1,\"pred\":1}\n{\"id\":\"b\",\"label\":0,\"pred\":1}\n");
  const auto new_file = parse("new.jsonl", "{\"id\":\"a\",\"pred\":\"positive\"}\n{\"id\":\"b\",\"pred\":0}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(old_file, new_file, nullptr); }),
            "new.jsonl:1: field 'pred': label 'positive' is not a label of the task [0, 1] (the true labels' set); "
            "pass --label-names "
            "when the task has more labels, or --unknown-preds-wrong to count such predictions as wrong");
  CompareOptions options;
  options.unknown_preds_wrong = true;
  const Comparison c = compare_predictions(old_file, new_file, nullptr, options);
  EXPECT_EQ(c.label_names, (std::vector<std::string>{"0", "1", "<not a label of the task>"}));
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kOldAccuracy), 0.5);
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kNewAccuracy), 0.5);  // b right, a wrong
  EXPECT_DOUBLE_EQ(*c.summary.value(Metric::kNfr), 0.5);
  // With the label set given, the same: an error unless asked.
  options = {};
  options.label_names = {"0", "1"};
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(old_file, new_file, nullptr, options); }),
            "new.jsonl:1: field 'pred': label 'positive' is not in the label set [0, 1]; pass --unknown-preds-wrong to "
            "count such "
            "predictions as wrong");
  options.unknown_preds_wrong = true;
  EXPECT_DOUBLE_EQ(*compare_predictions(old_file, new_file, nullptr, options).summary.value(Metric::kNewAccuracy), 0.5);
  // A true label outside the set stays an error whatever the flag.
  const auto bad_truth =
      parse("t.jsonl", "{\"id\":\"a\",\"label\":\"maybe\",\"pred\":1}\n{\"id\":\"b\",\"label\":0,\"pred\":1}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(bad_truth, new_file, nullptr, options); }),
            "t.jsonl:1: field 'label': label 'maybe' is not in the label set [0, 1]");
}

TEST(Compare, DatasetGivesLabelsTextsAndSlices) {
  const data::Dataset dev = data::load_dataset("sst2:dev");
  std::string old_text, new_text;
  for (std::size_t i = 0; i < dev.size(); ++i) {
    const auto& ex = dev.examples[i];
    const int wrong = 1 - ex.label;
    const int old_pred = i % 5 == 0 ? wrong : ex.label;  // old wrong on every fifth
    const int new_pred = i % 7 == 0 ? wrong : ex.label;  // new wrong on every seventh
    const double p = 0.55 + 0.4 * static_cast<double>(i % 10) / 10;
    old_text += fmt::format("{{\"id\":\"{}\",\"probs\":[{},{}]}}\n", ex.id, old_pred == 0 ? p : 1 - p, old_pred == 0 ? 1 - p : p);
    new_text += fmt::format("{{\"id\":\"{}\",\"pred\":{}}}\n", ex.id, new_pred);
  }
  const Comparison c = compare_predictions(parse("old.jsonl", old_text), parse("new.jsonl", new_text), &dev);
  // Negative flips: i % 7 == 0 and i % 5 != 0.
  std::size_t expected = 0;
  for (std::size_t i = 0; i < dev.size(); ++i) expected += (i % 7 == 0 && i % 5 != 0);
  EXPECT_EQ(c.summary.counts.negative_flips, static_cast<double>(expected));
  EXPECT_EQ(c.labels_from, "sst2:dev");
  EXPECT_FALSE(c.by_length.empty());
  EXPECT_FALSE(c.by_old_confidence.empty());
  double total = 0;
  for (const auto& s : c.by_old_confidence) total += s.counts.total();
  EXPECT_EQ(total, 872);
  ASSERT_FALSE(c.top_negative_flips.empty());
  EXPECT_FALSE(c.top_negative_flips[0].text_a.empty());
  EXPECT_GE(*c.top_negative_flips[0].old_confidence, *c.top_negative_flips.back().old_confidence);

  // A prediction file covering part of the dataset is refused.
  const std::string partial = old_text.substr(0, old_text.find('\n') + 1);
  const auto msg = error_of<InputError>([&] { compare_predictions(parse("old.jsonl", partial), parse("new.jsonl", partial), &dev); });
  EXPECT_EQ(msg, "old.jsonl: 871 examples of dataset sst2:dev have no prediction (first: id '" + dev.examples[1].id + "')");
  const auto stranger = parse("old.jsonl", "{\"id\":\"nope\",\"pred\":0}\n");
  EXPECT_EQ(error_of<InputError>([&] { compare_predictions(stranger, stranger, &dev); }),
            "old.jsonl:1: field 'id': id 'nope' is not in dataset sst2:dev");
}

TEST(Gates, ParseAndCheck) {
  const Comparison c = compare_predictions(parse("old.jsonl", kOld), parse("new.jsonl", kNew), nullptr);
  EXPECT_TRUE(gate_crossed(parse_gate("nfr>0.2"), c.summary));
  EXPECT_FALSE(gate_crossed(parse_gate("nfr > 0.25"), c.summary));
  EXPECT_TRUE(gate_crossed(parse_gate("nfr>=0.25"), c.summary));
  EXPECT_TRUE(gate_crossed(parse_gate("btc<0.7"), c.summary));
  EXPECT_FALSE(gate_crossed(parse_gate("acc_new<=0.5"), c.summary));
  EXPECT_EQ(error_of<ConfigError>([] { parse_gate("nrf>0.1"); }),
            "--fail-if 'nrf>0.1': unknown metric 'nrf' (known: old_accuracy, new_accuracy, accuracy_delta, nfr, pfr, nfi, btc, bec)");
  EXPECT_EQ(error_of<ConfigError>([] { parse_gate("nfr>2%"); }),
            "--fail-if 'nfr>2%': '2%' is not a number (rates are fractions: 0.02 for 2%)");
  EXPECT_THROW(parse_gate("nfr"), ConfigError);
  const auto perfect = parse("p.jsonl", "{\"id\":\"a\",\"label\":0,\"pred\":0}\n");
  const Comparison p = compare_predictions(perfect, perfect, nullptr);
  EXPECT_THROW(gate_crossed(parse_gate("nfi>0.5"), p.summary), InputError);
}

TEST(Reports, EveryFormatCarriesTheNumbers) {
  const Comparison c = compare_predictions(parse("old.jsonl", kOld), parse("new.jsonl", kNew), nullptr);
  const std::string text = report::render_text(c);
  EXPECT_NE(text.find("NFR                    25.00%  ["), std::string::npos) << text;
  EXPECT_NE(text.find("McNemar exact test"), std::string::npos);
  const auto json = nlohmann::json::parse(report::render_json(c));
  EXPECT_DOUBLE_EQ(json["metrics"]["nfr"]["value"].get<double>(), 0.25);
  EXPECT_EQ(json["flip_table"]["negative_flips"].get<double>(), 2);
  EXPECT_EQ(json["per_class"].size(), 3u);
  const std::string md = report::render_markdown(c);
  EXPECT_NE(md.find("| NFR | 25.00% |"), std::string::npos) << md;
  const std::string html = report::render_html(c);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Flips per true class"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // self-contained, no scripts
  EXPECT_THROW(report::parse_compare_format("pdf"), ConfigError);
}

}  // namespace
}  // namespace flipless::compare
