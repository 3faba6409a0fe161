#pragma once
// A WordPiece tokenizer that reproduces Hugging Face's BERT tokenizer (the `tokenizers`
// BertNormalizer + BertPreTokenizer + WordPiece + BERT post-processor):
//   1. clean text: drop NUL, U+FFFD and control characters; map whitespace to ' ';
//   2. put spaces around CJK ideographs;
//   3. strip accents (NFD, drop nonspacing marks) and lower-case, for uncased vocabularies;
//   4. split on whitespace and isolate every punctuation character;
//   5. greedy longest-match-first WordPiece with "##" continuations; a word longer than
//      100 characters, or one that cannot be covered, becomes [UNK];
//   6. [CLS] a [SEP] (b [SEP]) with token type ids 0 / 1, truncated "longest first".
// Tokenization stays outside the models: they take ids. Every method is const and
// thread-safe.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flipless::text {

struct TokenizerOptions {
  bool clean_text = true;
  bool tokenize_chinese_chars = true;
  bool lowercase = true;                  // uncased vocabularies
  std::optional<bool> strip_accents;      // unset: follows `lowercase`, as in Hugging Face
  std::size_t max_input_chars_per_word = 100;
  std::string continuing_subword_prefix = "##";
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
};

// The model input for one example (or pair); all three have the same length.
struct Encoding {
  std::vector<std::int32_t> input_ids;
  std::vector<std::int32_t> token_type_ids;  // 0 for [CLS] a [SEP], 1 for b [SEP]
  std::size_t size() const { return input_ids.size(); }
};

class WordPieceTokenizer {
 public:
  // From a vocab.txt (one token per line, id = line index) and options.
  static WordPieceTokenizer from_vocab_file(const std::filesystem::path& vocab_txt, TokenizerOptions options = {});
  // From a Hugging Face checkpoint folder: tokenizer.json when present, else vocab.txt with
  // tokenizer_config.json's do_lower_case / strip_accents / tokenize_chinese_chars.
  // Throws ModelError naming the file when neither is usable.
  static WordPieceTokenizer from_checkpoint_dir(const std::filesystem::path& dir);
  // From tokens in id order (tests).
  static WordPieceTokenizer from_tokens(std::vector<std::string> tokens, TokenizerOptions options = {});

  // The normalised, pre-tokenised words of `text` (steps 1-4).
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // WordPiece tokens of `text` without special tokens (steps 1-5).
  std::vector<std::string> tokenize(std::string_view text) const;
  // Ids of `text` without special tokens.
  std::vector<std::int32_t> token_ids(std::string_view text) const;
  // Full model input: [CLS] a [SEP] (b [SEP]), at most `max_length` ids (>= 3 with a pair,
  // >= 2 without; 0 means no limit).
  Encoding encode(std::string_view text_a, std::optional<std::string_view> text_b = std::nullopt,
                  std::size_t max_length = 0) const;

  std::size_t vocab_size() const { return tokens_.size(); }
  // The id of `token`, or nullopt.
  std::optional<std::int32_t> find(std::string_view token) const;
  const std::string& token(std::int32_t id) const { return tokens_.at(static_cast<std::size_t>(id)); }
  std::int32_t pad_id() const { return pad_id_; }
  const TokenizerOptions& options() const { return options_; }

 private:
  WordPieceTokenizer(std::vector<std::string> tokens, TokenizerOptions options, std::string source);
  std::int32_t require(const std::string& token) const;
  void wordpiece(std::string_view word, std::vector<std::int32_t>& out) const;

  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, std::int32_t, Hash, std::equal_to<>> ids_;
  TokenizerOptions options_;
  std::string source_;
  std::int32_t unk_id_ = 0, cls_id_ = 0, sep_id_ = 0, pad_id_ = 0;
};

}  // namespace flipless::text
