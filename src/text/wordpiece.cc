#include "flipless/text/wordpiece.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "flipless/core/error.h"
#include "flipless/core/file.h"

namespace flipless::text {

namespace {

// Decodes UTF-8 into code points; invalid bytes become U+FFFD (which clean_text drops).
std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {
      cp = 0xFFFD;
      n = 1;
    }
    out.push_back(static_cast<char32_t>(cp));
    p += n;
    left -= n;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

utf8proc_category_t category(char32_t cp) { return utf8proc_category(static_cast<utf8proc_int32_t>(cp)); }

// Rust's char::is_whitespace (the Unicode White_Space property), which the tokenizers use.
bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// BertNormalizer's is_control: categories Cc, Cf, Cs, Co, except \t \n \r. Unassigned code
// points (Cn) are kept, as the Rust tables the tokenizers use classify them as no category.
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: return true;
    default: return false;
  }
}

bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Canonical decomposition (NFD) without nonspacing marks.
std::u32string strip_accents(const std::u32string& in) {
  std::string utf8;
  for (char32_t c : in) append_utf8(utf8, c);
  utf8proc_uint8_t* mapped = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()), static_cast<utf8proc_ssize_t>(utf8.size()),
                              &mapped, UTF8PROC_DECOMPOSE);
  if (n < 0) return in;
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(mapped, &std::free);
  std::u32string out;
  for (char32_t c : decode(std::string_view(reinterpret_cast<const char*>(mapped), static_cast<std::size_t>(n)))) {
    if (category(c) != UTF8PROC_CATEGORY_MN) out.push_back(c);
  }
  return out;
}

// Full lower-case mapping, as Rust's char::to_lowercase: the simple mapping, except U+0130,
// the one unconditional multi-character lower-casing in Unicode.
void append_lower(std::u32string& out, char32_t c) {
  if (c == 0x130) {
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  const auto file = core::InputFile::open(path);
  std::vector<std::string> lines;
  core::LineCursor cursor(file.bytes());
  std::string_view line;
  while (cursor.next(line)) lines.emplace_back(line);
  if (lines.empty()) throw ModelError(fmt::format("{}: empty vocabulary", path.string()));
  return lines;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> tokens, TokenizerOptions options, std::string source)
    : tokens_(std::move(tokens)), options_(std::move(options)), source_(std::move(source)) {
  ids_.reserve(tokens_.size());
  for (std::size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<std::int32_t>(i));
  unk_id_ = require(options_.unk_token);
  cls_id_ = require(options_.cls_token);
  sep_id_ = require(options_.sep_token);
  pad_id_ = require(options_.pad_token);
}

std::int32_t WordPieceTokenizer::require(const std::string& token) const {
  const auto id = find(token);
  if (!id) throw ModelError(fmt::format("{}: the vocabulary has no special token '{}'", source_, token));
  return *id;
}

WordPieceTokenizer WordPieceTokenizer::from_tokens(std::vector<std::string> tokens, TokenizerOptions options) {
  return WordPieceTokenizer(std::move(tokens), std::move(options), "vocabulary");
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::filesystem::path& vocab_txt, TokenizerOptions options) {
  return WordPieceTokenizer(read_lines(vocab_txt), std::move(options), vocab_txt.string());
}

WordPieceTokenizer WordPieceTokenizer::from_checkpoint_dir(const std::filesystem::path& dir) {
  TokenizerOptions options;
  const auto tokenizer_json = dir / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_json)) {
    nlohmann::json j;
    try {
      const auto file = core::InputFile::open(tokenizer_json);
      j = nlohmann::json::parse(file.bytes());
      const auto& model = j.at("model");
      if (model.at("type") != "WordPiece") {
        throw ModelError(fmt::format("{}: model type '{}' is not WordPiece", tokenizer_json.string(), model.at("type").get<std::string>()));
      }
      std::vector<std::string> tokens(model.at("vocab").size());
      for (const auto& [token, id] : model.at("vocab").items()) {
        const auto i = id.get<std::size_t>();
        if (i >= tokens.size()) throw ModelError(fmt::format("{}: vocab id {} out of range", tokenizer_json.string(), i));
        tokens[i] = token;
      }
      options.unk_token = model.value("unk_token", options.unk_token);
      options.continuing_subword_prefix = model.value("continuing_subword_prefix", options.continuing_subword_prefix);
      options.max_input_chars_per_word = model.value("max_input_chars_per_word", options.max_input_chars_per_word);
      if (const auto& n = j.at("normalizer"); n.is_object() && n.value("type", "") == "BertNormalizer") {
        options.clean_text = n.value("clean_text", true);
        options.tokenize_chinese_chars = n.value("handle_chinese_chars", true);
        options.lowercase = n.value("lowercase", true);
        if (n.contains("strip_accents") && n["strip_accents"].is_boolean()) options.strip_accents = n["strip_accents"].get<bool>();
      }
      return WordPieceTokenizer(std::move(tokens), std::move(options), tokenizer_json.string());
    } catch (const nlohmann::json::exception& e) {
      throw ModelError(fmt::format("{}: not a usable tokenizer.json: {}", tokenizer_json.string(), e.what()));
    }
  }
  const auto vocab = dir / "vocab.txt";
  if (!std::filesystem::exists(vocab)) {
    throw ModelError(fmt::format("{}: no tokenizer.json or vocab.txt (a WordPiece vocabulary is needed)", dir.string()));
  }
  const auto config = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    try {
      const auto file = core::InputFile::open(config);
      const auto j = nlohmann::json::parse(file.bytes());
      options.lowercase = j.value("do_lower_case", true);
      options.tokenize_chinese_chars = j.value("tokenize_chinese_chars", true);
      if (j.contains("strip_accents") && j["strip_accents"].is_boolean()) options.strip_accents = j["strip_accents"].get<bool>();
    } catch (const nlohmann::json::exception& e) {
      throw ModelError(fmt::format("{}: invalid JSON: {}", config.string(), e.what()));
    }
  }
  return from_vocab_file(vocab, std::move(options));
}

std::optional<std::int32_t> WordPieceTokenizer::find(std::string_view token) const {
  const auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::u32string s;
  s.reserve(text.size());
  for (char32_t c : decode(text)) {
    if (options_.clean_text) {
      if (c == 0 || c == 0xFFFD || is_control(c)) continue;
      if (is_whitespace(c)) c = U' ';
    }
    if (options_.tokenize_chinese_chars && is_chinese_char(c)) {
      s.push_back(U' ');
      s.push_back(c);
      s.push_back(U' ');
    } else {
      s.push_back(c);
    }
  }
  if (options_.strip_accents.value_or(options_.lowercase)) s = strip_accents(s);
  if (options_.lowercase) {
    std::u32string lower;
    lower.reserve(s.size());
    for (char32_t c : s) append_lower(lower, c);
    s = std::move(lower);
  }
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (char32_t c : s) {
    if (is_whitespace(c)) {
      flush();
    } else if (is_punctuation(c)) {
      flush();
      append_utf8(word, c);
      flush();
    } else {
      append_utf8(word, c);
    }
  }
  flush();
  return words;
}

void WordPieceTokenizer::wordpiece(std::string_view word, std::vector<std::int32_t>& out) const {
  // Character boundaries (byte offsets), since matching is by whole characters.
  std::vector<std::size_t> bounds;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) bounds.push_back(i);
  }
  bounds.push_back(word.size());
  if (bounds.size() - 1 > options_.max_input_chars_per_word) {
    out.push_back(unk_id_);
    return;
  }
  const std::size_t first = out.size();
  std::string piece;
  std::size_t start = 0;
  while (start + 1 < bounds.size()) {
    std::size_t end = bounds.size() - 1;
    std::optional<std::int32_t> found;
    for (; end > start; --end) {
      const std::string_view sub = word.substr(bounds[start], bounds[end] - bounds[start]);
      if (start == 0) {
        found = find(sub);
      } else {
        piece.assign(options_.continuing_subword_prefix);
        piece.append(sub);
        found = find(piece);
      }
      if (found) break;
    }
    if (!found) {
      out.resize(first);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(*found);
    start = end;
  }
}

std::vector<std::int32_t> WordPieceTokenizer::token_ids(std::string_view text) const {
  std::vector<std::int32_t> ids;
  for (const auto& word : basic_tokenize(text)) wordpiece(word, ids);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (auto id : token_ids(text)) out.push_back(token(id));
  return out;
}

Encoding WordPieceTokenizer::encode(std::string_view text_a, std::optional<std::string_view> text_b, std::size_t max_length) const {
  std::vector<std::int32_t> a = token_ids(text_a);
  std::vector<std::int32_t> b;
  if (text_b) b = token_ids(*text_b);
  const std::size_t specials = text_b ? 3 : 2;
  if (max_length != 0) {
    if (max_length < specials) throw ConfigError(fmt::format("max_length {} leaves no room for the special tokens", max_length));
    const std::size_t target = max_length - specials;
    if (!text_b) {
      if (a.size() > target) a.resize(target);
    } else if (a.size() + b.size() > target) {
      // Hugging Face tokenizers' "longest first", as it computes it.
      std::size_t n1 = a.size(), n2 = b.size();
      const bool swap = n1 > n2;
      if (swap) std::swap(n1, n2);
      n2 = n1 > target ? n1 : std::max(n1, target - n1);
      if (n1 + n2 > target) {
        n1 = target / 2;
        n2 = n1 + target % 2;
      }
      if (swap) std::swap(n1, n2);
      if (a.size() > n1) a.resize(n1);
      if (b.size() > n2) b.resize(n2);
    }
  }
  Encoding e;
  e.input_ids.reserve(a.size() + b.size() + specials);
  e.input_ids.push_back(cls_id_);
  e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
  e.input_ids.push_back(sep_id_);
  e.token_type_ids.assign(e.input_ids.size(), 0);
  if (text_b) {
    e.input_ids.insert(e.input_ids.end(), b.begin(), b.end());
    e.input_ids.push_back(sep_id_);
    e.token_type_ids.resize(e.input_ids.size(), 1);
  }
  return e;
}

}  // namespace flipless::text
