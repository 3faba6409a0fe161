#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/core/hash.h"
#include "flipless/data/glue.h"
#include "flipless/data/readers.h"
#include "flipless/data/registry.h"
#include "flipless/data/split.h"

namespace flipless::data {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

const std::filesystem::path kShared = FLIPLESS_SHARED_DATA_DIR;

TEST(Bundled, Sst2AndMrpcLoadByName) {
  const Dataset dev = load_dataset("sst2:dev");
  EXPECT_EQ(dev.name, "sst2:dev");
  EXPECT_EQ(dev.size(), 872u);
  EXPECT_EQ(dev.label_counts(), (std::vector<std::size_t>{428, 444}));
  EXPECT_FALSE(dev.has_text_pair());
  EXPECT_EQ(dev.examples[0].text_a, "it 's a charming and often affecting journey . ");  // trailing space kept
  EXPECT_EQ(dev.examples[0].id, core::content_id(dev.examples[0].text_a, std::nullopt));
  const Dataset train = load_dataset("sst2:train");
  EXPECT_EQ(train.size(), 67349u);
  EXPECT_EQ(train.label_counts(), (std::vector<std::size_t>{29780, 37569}));
  const Dataset mrpc = load_dataset("mrpc:train");
  EXPECT_EQ(mrpc.size(), 3668u);
  EXPECT_TRUE(mrpc.has_text_pair());
  EXPECT_EQ(load_dataset("mrpc:dev").examples[0].id, "1355540-1355592");
  EXPECT_EQ(bundled_dataset_names().size(), 4u);
}

TEST(Bundled, DuplicateSentencesGetDistinctStableIds) {
  const Dataset train = load_dataset("sst2:train");
  std::set<std::string> ids;
  std::size_t suffixed = 0;
  for (const auto& ex : train.examples) {
    ids.insert(ex.id);
    suffixed += ex.id.find('-') != std::string::npos;
  }
  EXPECT_EQ(ids.size(), train.size());
  EXPECT_GT(suffixed, 300u);  // SST-2 train repeats a few hundred sentences
}

TEST(Bundled, UnknownSplitsAndTasksAreClearErrors) {
  EXPECT_EQ(error_of<ConfigError>([] { load_dataset("qnli:dev"); }),
            "'qnli:dev' is not bundled (bundled: sst2:train, sst2:dev, mrpc:train, mrpc:dev); give a path instead, e.g. "
            "qnli:/path/to/dev.tsv");
  EXPECT_THROW(glue_task("stsb"), ConfigError);
  EXPECT_THROW(glue_task("imdb"), ConfigError);
  EXPECT_EQ(glue_task("SST-2").task, GlueTask::kSst2);
}

TEST(Glue, QnliFromTheSharedFolder) {
  if (!std::filesystem::exists(kShared / "glue/QNLI/dev.tsv")) GTEST_SKIP() << "no " << kShared << "/glue/QNLI";
  const Dataset dev = load_dataset("qnli:" + (kShared / "glue/QNLI/dev.tsv").string());
  EXPECT_EQ(dev.size(), 5463u);
  EXPECT_EQ(dev.label_counts(), (std::vector<std::size_t>{2702, 2761}));
  EXPECT_EQ(dev.examples[0].id, "0");
  const Dataset subset = read_glue_file(kShared / "glue/QNLI/train_subset.tsv", GlueTask::kQnli);
  EXPECT_EQ(subset.size(), 9999u);
  EXPECT_EQ(subset.examples[0].id, "ppft_train_0");
}

TEST(Glue, BareQuotesAreText) {
  TempDir dir;
  const auto p = dir.write("dev.tsv", "sentence\tlabel\nhe said \" hi\t1\n\"quoted\" start\t0\n");
  const Dataset ds = read_glue_file(p, GlueTask::kSst2);
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds.examples[0].text_a, "he said \" hi");
  EXPECT_EQ(ds.examples[1].text_a, "\"quoted\" start");
}

TEST(Glue, OtherTaskLayouts) {
  TempDir dir;
  const Dataset cola = read_glue_file(dir.write("cola.tsv", "gj04\t1\t\tThe book was read.\ngj04\t0\t*\tBook the read.\n"), GlueTask::kCola);
  EXPECT_EQ(cola.size(), 2u);
  EXPECT_EQ(cola.examples[1].label, 0);
  const Dataset rte = read_glue_file(dir.write("rte.tsv", "index\tsentence1\tsentence2\tlabel\n7\tA\tB\tnot_entailment\n"), GlueTask::kRte);
  EXPECT_EQ(rte.examples[0].id, "7");
  EXPECT_EQ(rte.examples[0].label, 1);
  const Dataset mnli = read_glue_file(
      dir.write("mnli.tsv", "index\tpromptID\tpairID\tsentence1\tsentence2\tlabel1\tgold_label\n0\t1\t1n\tA\tB\tneutral\tneutral\n"),
      GlueTask::kMnli);
  EXPECT_EQ(mnli.examples[0].id, "1n");
  EXPECT_EQ(mnli.examples[0].label, 1);
  EXPECT_EQ(*mnli.examples[0].text_b, "B");
}

// Every bad-input path gives one line naming the file, the line and the field.
TEST(BadInput, MissingFile) {
  const auto msg = error_of<IoError>([] { read_glue_file("/no/such/dev.tsv", GlueTask::kSst2); });
  EXPECT_EQ(msg, "/no/such/dev.tsv: cannot open: No such file or directory");
}

TEST(BadInput, EmptyFileAndHeaderOnly) {
  TempDir dir;
  const auto empty = dir.write("empty.tsv", "");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(empty, GlueTask::kSst2); }), empty.string() + ": file is empty");
  const auto header = dir.write("header.tsv", "sentence\tlabel\n");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(header, GlueTask::kSst2); }), header.string() + ": no data rows");
}

TEST(BadInput, MissingColumn) {
  TempDir dir;
  const auto p = dir.write("dev.tsv", "text\tlabel\nhello\t1\n");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(p, GlueTask::kSst2); }),
            p.string() + ":1: missing column 'sentence' of a GLUE sst2 file (the header has: text, label)");
  const auto csv = dir.write("d.csv", "body,label\nhello,1\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(csv, {}); }),
            csv.string() + ":1: missing column 'text' (the header has: body, label)");
}

TEST(BadInput, RaggedRow) {
  TempDir dir;
  const auto p = dir.write("dev.tsv", "sentence\tlabel\ngood\t1\nbad row\n");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(p, GlueTask::kSst2); }),
            p.string() + ":3: expected 2 fields as in the header, found 1");
}

TEST(BadInput, LabelOutsideTheLabelSet) {
  TempDir dir;
  const auto p = dir.write("dev.tsv", "sentence\tlabel\ngood\t1\nodd\t2\n");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(p, GlueTask::kSst2); }),
            p.string() + ":3: column 'label': label '2' is not in the label set [0, 1]");
  ColumnSpec spec;
  spec.label_names = {"neg", "pos"};
  const auto j = dir.write("d.jsonl", "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": \"meh\"}\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(j, spec); }),
            j.string() + ":2: column 'label': label 'meh' is not in the label set [neg, pos]");
}

TEST(BadInput, DuplicateId) {
  TempDir dir;
  const auto p = dir.write("dev.tsv", "index\tquestion\tsentence\tlabel\n1\tq\ts\tentailment\n1\tq2\ts2\tentailment\n");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(p, GlueTask::kQnli); }),
            p.string() + ":3: column 'index': duplicate id '1' (first on line 2)");
}

TEST(BadInput, InvalidUtf8) {
  TempDir dir;
  const auto p = dir.write("dev.tsv", "sentence\tlabel\nfine\t1\nbro\xC3\x28ken\t0\n");
  EXPECT_EQ(error_of<InputError>([&] { read_glue_file(p, GlueTask::kSst2); }),
            p.string() + ":3: column 'sentence': invalid UTF-8 at byte 4 of the field");
}

TEST(BadInput, MalformedJsonAndCsv) {
  TempDir dir;
  const auto j = dir.write("d.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\" \"label\": 1}\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(j, {}); }), j.string() + ":2:14: invalid JSON: expected ',' or '}'");
  const auto wrong_type = dir.write("t.jsonl", "{\"text\": 5, \"label\": 1}\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(wrong_type, {}); }),
            wrong_type.string() + ":1: field 'text': expected a string, found a number");
  const auto c = dir.write("d.csv", "text,label\n\"unterminated,1\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(c, {}); }), c.string() + ":2: unterminated quoted field");
  EXPECT_THROW(read_table_file(dir.write("d.parquet", "x"), {}), InputError);
}

TEST(GenericReaders, CsvWithQuotesAndPairs) {
  TempDir dir;
  const auto p = dir.write("pairs.csv",
                           "id,premise,hypothesis,gold\r\n"
                           "a,\"He said \"\"hi\"\", then left\",\"multi\nline\",yes\r\n"
                           "b,plain,text,no\r\n");
  ColumnSpec spec;
  spec.id = "id";
  spec.text = "premise";
  spec.text_pair = "hypothesis";
  spec.label = "gold";
  const Dataset ds = read_table_file(p, spec);
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds.examples[0].text_a, "He said \"hi\", then left");
  EXPECT_EQ(*ds.examples[0].text_b, "multi\nline");
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"no", "yes"}));  // sorted
  EXPECT_EQ(ds.examples[0].label, 1);
  EXPECT_EQ(ds.examples[1].id, "b");
}

TEST(GenericReaders, JsonlAndTsvInferLabels) {
  TempDir dir;
  const auto j = dir.write("d.jsonl",
                           "{\"text\": \"caf\\u00e9 \\ud83d\\ude00\", \"label\": 10}\n\n{\"text\": \"b\", \"label\": 9, \"extra\": [1, {\"x\": null}]}\n");
  const Dataset ds = read_table_file(j, {});
  EXPECT_EQ(ds.examples[0].text_a, "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"9", "10"}));  // numeric order
  EXPECT_EQ(ds.examples[0].label, 1);
  ColumnSpec unlabelled;
  unlabelled.label.clear();
  const Dataset t = read_table_file(dir.write("u.tsv", "text\nx \"y\n"), unlabelled);
  EXPECT_FALSE(t.has_labels());
  EXPECT_EQ(t.examples[0].text_a, "x \"y");
}

// Issue 14, 16: an "id" column is the id unless told otherwise, as prediction files expect.
TEST(GenericReaders, AnIdColumnIsTheIdByDefault) {
  TempDir dir;
  const auto j = dir.write(
      "d.jsonl", "{\"id\": \"r1\", \"text\": \"a\", \"label\": 1}\n{\"id\": 7, \"text\": \"b\", \"label\": 0}\n");
  const Dataset ds = read_table_file(j, {});
  EXPECT_EQ(ds.examples[0].id, "r1");
  EXPECT_EQ(ds.examples[1].id, "7");
  const auto c = dir.write("d.csv", "text,id,label\na,r1,1\nb,r2,0\n");
  EXPECT_EQ(read_table_file(c, {}).examples[1].id, "r2");
  // --hash-ids: content hashes even so; no id column: content hashes as before.
  ColumnSpec hashed;
  hashed.hash_ids = true;
  EXPECT_EQ(read_table_file(j, hashed).examples[0].id, core::content_id("a", std::nullopt));
  EXPECT_EQ(read_table_file(dir.write("n.csv", "text,label\na,1\n"), {}).examples[0].id,
            core::content_id("a", std::nullopt));
  // Another column named explicitly; both at once is a contradiction.
  ColumnSpec named;
  named.id = "label";
  EXPECT_EQ(read_table_file(c, named).examples[0].id, "1");
  named.hash_ids = true;
  EXPECT_EQ(error_of<ConfigError>([&] { read_table_file(c, named); }),
            "an id column and content-hash ids exclude each other: give one");
  // The first JSONL row decides; a row that disagrees is an error naming it.
  const auto some =
      dir.write("s.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"id\": \"x\", \"text\": \"b\", \"label\": 0}\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(some, {}); }),
            some.string() + ":2: field 'id': present here but not on line 1; give every row an id, or pass --hash-ids");
  const auto missing =
      dir.write("m.jsonl", "{\"id\": \"x\", \"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": 0}\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(missing, {}); }), missing.string() + ":2: missing field 'id'");
  const auto dup = dir.write("dup.csv", "id,text,label\nr1,a,1\nr1,b,0\n");
  EXPECT_EQ(error_of<InputError>([&] { read_table_file(dup, {}); }),
            dup.string() + ":3: column 'id': duplicate id 'r1' (first on line 2)");
}

TEST(Split, StratifiedDeterministicAndOrderFree) {
  const Dataset dev = load_dataset("sst2:dev");
  const auto a = split_train_validation(dev, 0.25, 1);
  EXPECT_EQ(a.validation.size(), 107u + 111u);  // round(0.25 * 428) + round(0.25 * 444)
  EXPECT_EQ(a.validation.label_counts(), (std::vector<std::size_t>{107, 111}));
  EXPECT_EQ(a.train.size() + a.validation.size(), dev.size());
  Dataset reversed = dev;
  std::reverse(reversed.examples.begin(), reversed.examples.end());
  const auto b = split_train_validation(reversed, 0.25, 1);
  std::set<std::string> va, vb;
  for (const auto& ex : a.validation.examples) va.insert(ex.id);
  for (const auto& ex : b.validation.examples) vb.insert(ex.id);
  EXPECT_EQ(va, vb);
  const auto c = split_train_validation(dev, 0.25, 2);
  std::set<std::string> vc;
  for (const auto& ex : c.validation.examples) vc.insert(ex.id);
  EXPECT_NE(va, vc);
  EXPECT_THROW(split_train_validation(dev, 1.0, 0), ConfigError);
}

TEST(Split, RowsOfKeepTheGivenOrderAndRefuseIndicesOutOfRange) {
  const Dataset dev = load_dataset("sst2:dev");
  const auto part = rows_of(dev, {5, 0, 5});
  ASSERT_EQ(part.size(), 3u);
  EXPECT_EQ(part.examples[0].id, dev.examples[5].id);
  EXPECT_EQ(part.examples[1].id, dev.examples[0].id);
  EXPECT_EQ(part.examples[2].id, dev.examples[5].id);
  EXPECT_EQ(part.label_names, dev.label_names);
  EXPECT_EQ(part.name, dev.name);
  EXPECT_EQ(error_of<InputError>([&] { rows_of(dev, {0, 872}); }), dev.name + ": row 872 out of range (the dataset has 872 rows)");
  EXPECT_THROW(rows_of(dev, {-1}), InputError);
}

}  // namespace
}  // namespace flipless::data
