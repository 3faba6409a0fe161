#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <atomic>
#include <thread>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/text/wordpiece.h"

namespace flipless::text {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

WordPieceTokenizer tiny() {
  return WordPieceTokenizer::from_tokens(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", "world", "!", ",", "cafe", "你", "好", "##s", "a", "b"});
}

TEST(WordPiece, GreedyLongestMatch) {
  const auto t = tiny();
  EXPECT_EQ(t.tokenize("unaffable"), (std::vector<std::string>{"un", "##aff", "##able"}));
  EXPECT_EQ(t.tokenize("Hello, WORLD!"), (std::vector<std::string>{"hello", ",", "world", "!"}));
  EXPECT_EQ(t.tokenize("unaffablex"), (std::vector<std::string>{"[UNK]"}));  // cannot be covered: the whole word
  EXPECT_EQ(t.tokenize("Café"), (std::vector<std::string>{"cafe"}));          // accents stripped when uncased
  EXPECT_EQ(t.tokenize("你好"), (std::vector<std::string>{"你", "好"}));       // CJK split per character
  EXPECT_EQ(t.tokenize(std::string(101, 'a')), (std::vector<std::string>{"[UNK]"}));
  EXPECT_TRUE(t.tokenize(" \t\n").empty());
}

TEST(WordPiece, EncodesPairsWithTypeIdsAndTruncates) {
  const auto t = tiny();
  const Encoding e = t.encode("hello world", std::string_view("a b a b"), 0);
  EXPECT_EQ(e.input_ids, (std::vector<std::int32_t>{2, 7, 8, 3, 15, 16, 15, 16, 3}));
  EXPECT_EQ(e.token_type_ids, (std::vector<std::int32_t>{0, 0, 0, 0, 1, 1, 1, 1, 1}));
  // Longest first: 2 + 4 tokens into 7 - 3 = 4 slots -> 2 + 2.
  const Encoding cut = t.encode("hello world", std::string_view("a b a b"), 7);
  EXPECT_EQ(cut.input_ids, (std::vector<std::int32_t>{2, 7, 8, 3, 15, 16, 3}));
  EXPECT_EQ(t.encode("hello world hello", std::nullopt, 3).input_ids, (std::vector<std::int32_t>{2, 7, 3}));
  EXPECT_THROW(t.encode("a", std::string_view("b"), 2), ConfigError);
}

TEST(WordPiece, MissingSpecialTokensAndFilesAreClearErrors) {
  EXPECT_EQ(error_of<ModelError>([] { WordPieceTokenizer::from_tokens({"[PAD]", "[UNK]", "[CLS]"}); }),
            "vocabulary: the vocabulary has no special token '[SEP]'");
  TempDir dir;
  EXPECT_NE(error_of<ModelError>([&] { WordPieceTokenizer::from_checkpoint_dir(dir.path()); }).find("no tokenizer.json or vocab.txt"),
            std::string::npos);
  dir.write("tokenizer.json", "{\"model\": ");
  EXPECT_NE(error_of<ModelError>([&] { WordPieceTokenizer::from_checkpoint_dir(dir.path()); }).find("not a usable tokenizer.json"),
            std::string::npos);
}

std::filesystem::path minilm_dir() {
  const char* env = std::getenv("FLIPLESS_MODELS_DIR");
  const char* home = std::getenv("HOME");
  const std::filesystem::path base = env ? std::filesystem::path(env) : std::filesystem::path(home ? home : "/root") / ".cache/flipless/models";
  return base / "minilm-l6";
}

// Golden: ids identical to Hugging Face's fast tokenizer on every SST-2 and MRPC dev
// sentence, MRPC pairs (truncated at 128 and 24) and hard Unicode cases.
TEST(WordPieceGolden, MatchesHuggingFaceOnEveryCase) {
  const auto dir = minilm_dir();
  if (!std::filesystem::exists(dir / "vocab.txt")) GTEST_SKIP() << "no MiniLM at " << dir << ": run scripts/fetch_models.sh";
  const auto file = core::InputFile::open(std::string(FLIPLESS_TEST_DIR) + "/golden/text/wordpiece_golden.json.gz");
  const auto golden = nlohmann::json::parse(file.bytes());
  ASSERT_GT(golden["cases"].size(), 2500u);
  for (const auto* source : {"tokenizer.json", "vocab.txt"}) {
    // Both ways of loading a checkpoint must agree with the reference.
    std::filesystem::path load_dir = dir;
    TempDir only_vocab;
    if (std::string(source) == "vocab.txt") {
      std::filesystem::copy_file(dir / "vocab.txt", only_vocab.path() / "vocab.txt");
      std::filesystem::copy_file(dir / "tokenizer_config.json", only_vocab.path() / "tokenizer_config.json");
      load_dir = only_vocab.path();
    }
    const auto t = WordPieceTokenizer::from_checkpoint_dir(load_dir);
    std::size_t mismatches = 0;
    for (const auto& c : golden["cases"]) {
      const auto a = c["a"].get<std::string>();
      std::optional<std::string> b;
      if (!c["b"].is_null()) b = c["b"].get<std::string>();
      const Encoding e = t.encode(a, b ? std::optional<std::string_view>(*b) : std::nullopt, c["max_length"].get<std::size_t>());
      const auto ids = c["ids"].get<std::vector<std::int32_t>>();
      const auto types = c["type_ids"].get<std::vector<std::int32_t>>();
      if (e.input_ids != ids || e.token_type_ids != types) {
        if (++mismatches <= 5) ADD_FAILURE() << source << ": mismatch on '" << a << "' / '" << b.value_or("") << "'";
      }
    }
    EXPECT_EQ(mismatches, 0u) << source;
  }
}

TEST(WordPiece, IsThreadSafe) {
  const auto t = tiny();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k) {
        if (t.tokenize("Hello, unaffable world!").size() != 7) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace flipless::text
