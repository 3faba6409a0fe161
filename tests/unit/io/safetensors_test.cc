#include <gtest/gtest.h>

#include <cstring>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"

namespace flipless::io {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

std::string with_header(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  std::uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);  // little-endian host
  return out + json + data;
}

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  const std::vector<float> w = {1.5f, -2.0f, 3.25f, 0.0f, 5.0f, 6.0f};
  const std::vector<std::int64_t> ids = {7, 8};
  TempDir dir;
  const auto path = dir.path() / "m.safetensors";
  write_safetensors(path,
                    {{"w", DType::kF32, {2, 3}, std::as_bytes(std::span(w))}, {"a.ids", DType::kI64, {2}, std::as_bytes(std::span(ids))}},
                    {{"format", "pt"}});
  const auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* t = f.find("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(t->numel(), 6);
  std::vector<float> back(6);
  std::memcpy(back.data(), f.data(*t).data(), 24);
  EXPECT_EQ(back, w);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find("a.ids")->dtype, DType::kI64);
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST(Safetensors, CorruptFilesThrowNeverCrash) {
  const std::string ok_json = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NO_THROW(SafetensorsFile::parse(with_header(ok_json, std::string(8, 'x')), "ok"));
  struct Case {
    std::string bytes, expected;
  };
  const Case cases[] = {
      {"abc", "shorter than its 8-byte header length"},
      {std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "header length 4294967295 exceeds the file"},
      {with_header("{not json", ""), "header is not JSON"},
      {with_header("[1,2]", ""), "header is not a JSON object"},
      {with_header(ok_json, std::string(4, 'x')), "data [0, 8) lies outside the 4-byte buffer (truncated file?)"},
      {with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')), "has 8 bytes for shape [3] of F32"},
      {with_header(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x')), "unsupported dtype"},
      {with_header(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 'x')), "negative or non-integer dimension"},
      {with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   std::string(8, 'x')),
       "overlap"},
      {with_header(R"({"w":{"dtype":"F32","shape":[2]}})", ""), "lacks dtype, shape or data_offsets"},
  };
  for (const auto& c : cases) {
    const auto msg = error_of<ModelError>([&] { SafetensorsFile::parse(c.bytes, "bad.safetensors"); });
    EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
    EXPECT_EQ(msg.rfind("bad.safetensors: not a valid safetensors file: ", 0), 0u) << msg;
  }
  TempDir dir;
  EXPECT_THROW(SafetensorsFile::open(dir.path() / "none.safetensors"), ModelError);
}

}  // namespace
}  // namespace flipless::io
