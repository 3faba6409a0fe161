#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/core/hash.h"
#include "flipless/core/utf8.h"

namespace flipless::core {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

TEST(Utf8, AcceptsValidText) {
  EXPECT_FALSE(find_invalid_utf8(""));
  EXPECT_FALSE(find_invalid_utf8("plain ascii"));
  EXPECT_FALSE(find_invalid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(find_invalid_utf8("\xF4\x8F\xBF\xBF"));                        // U+10FFFF
}

TEST(Utf8, FindsTheFirstInvalidByte) {
  EXPECT_EQ(find_invalid_utf8("ab\xFF"), 2u);
  EXPECT_EQ(find_invalid_utf8("\xC3"), 0u);              // truncated
  EXPECT_EQ(find_invalid_utf8("x\xC0\xAF"), 1u);         // overlong '/'
  EXPECT_EQ(find_invalid_utf8("\xE0\x80\xAF"), 0u);      // overlong, 3 bytes
  EXPECT_EQ(find_invalid_utf8("\xED\xA0\x80"), 0u);      // surrogate U+D800
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("ok\xE2\x82"), 2u);        // truncated at the end
  EXPECT_EQ(find_invalid_utf8("\x80"), 0u);              // lone continuation byte
}

TEST(Hash, IsStableAcrossBuilds) {
  // Pinned values: the example generator (examples/generate.py) reimplements the same hash.
  EXPECT_EQ(content_id("hello", std::nullopt), "h16fe05a1c75bcd0f");
  EXPECT_EQ(hash64(""), 0xf52a15e9a9b5e89bULL);
  EXPECT_EQ(hash64("abc", 7), 0xed50fd63fbc67dfcULL);
}

TEST(Hash, PairsDifferFromConcatenations) {
  EXPECT_NE(content_id("ab", std::string("c")), content_id("a", std::string("bc")));
  EXPECT_NE(content_id("ab", std::nullopt), content_id("ab", std::string("")));
}

TEST(LineCursor, NumbersLinesAndStripsCarriageReturns) {
  LineCursor lines("a\r\nb\n\nc");
  std::string_view line;
  ASSERT_TRUE(lines.next(line));
  EXPECT_EQ(line, "a");
  ASSERT_TRUE(lines.next(line));
  EXPECT_EQ(line, "b");
  ASSERT_TRUE(lines.next(line));
  EXPECT_EQ(line, "");
  ASSERT_TRUE(lines.next(line));
  EXPECT_EQ(line, "c");
  EXPECT_EQ(lines.line_number(), 4u);
  EXPECT_FALSE(lines.next(line));
}

TEST(InputFile, ReadsPlainAndGzipFiles) {
  TempDir dir;
  const auto plain = dir.write("a.txt", "hello\nworld\n");
  EXPECT_EQ(InputFile::open(plain).bytes(), "hello\nworld\n");
  const auto gz_path = dir.path() / "a.txt.gz";
  gzFile gz = gzopen(gz_path.c_str(), "wb");
  gzputs(gz, "compressed text\n");
  gzclose(gz);
  EXPECT_EQ(InputFile::open(gz_path).bytes(), "compressed text\n");
  EXPECT_EQ(InputFile::open(dir.write("empty.txt", "")).bytes(), "");
}

TEST(InputFile, NamesThePathWhenItCannotOpen) {
  TempDir dir;
  const auto msg = error_of<IoError>([&] { InputFile::open(dir.path() / "missing.tsv"); });
  EXPECT_NE(msg.find("missing.tsv: cannot open: No such file or directory"), std::string::npos) << msg;
  const auto dir_msg = error_of<IoError>([&] { InputFile::open(dir.path()); });
  EXPECT_NE(dir_msg.find("not a regular file"), std::string::npos) << dir_msg;
  const auto corrupt = dir.write("bad.tsv.gz", "this is not gzip data at all, just text");
  EXPECT_THROW(InputFile::open(corrupt), IoError);
}

TEST(WriteFileAtomic, ReplacesWholeAndLeavesNoTemporaryFile) {
  TempDir dir;
  const auto target = dir.path() / "out.json";
  write_file_atomic(target, "first");
  write_file_atomic(target, "second version");
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "second version");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);
}

TEST(WriteFileAtomic, FailsCleanlyInAMissingFolder) {
  TempDir dir;
  const auto msg = error_of<IoError>([&] { write_file_atomic(dir.path() / "no" / "such" / "out.txt", "x"); });
  EXPECT_NE(msg.find("out.txt: cannot write"), std::string::npos) << msg;
}

}  // namespace
}  // namespace flipless::core
