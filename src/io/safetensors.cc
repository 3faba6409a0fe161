#include "flipless/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>

#include "flipless/core/error.h"
#include "flipless/core/file.h"

namespace flipless::io {

namespace {

constexpr std::size_t kMaxHeader = 100u << 20;  // 100 MB, as the reference implementation

struct DTypeName {
  DType dtype;
  std::string_view name;
  std::size_t size;
};
constexpr DTypeName kDTypes[] = {{DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
                                 {DType::kI16, "I16", 2},   {DType::kI32, "I32", 4},   {DType::kI64, "I64", 8},
                                 {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2}, {DType::kF32, "F32", 4},
                                 {DType::kF64, "F64", 8}};

}  // namespace

std::string_view dtype_name(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

std::size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 0;
}

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

struct SafetensorsFile::Storage {
  std::optional<core::InputFile> file;
  std::string bytes;
};

SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.source_ = path.string();
  f.storage_ = std::make_unique<Storage>();
  try {
    f.storage_->file = core::InputFile::open(path);
  } catch (const IoError& e) {
    throw ModelError(e.what());
  }
  f.parse_header();
  return f;
}

SafetensorsFile SafetensorsFile::parse(std::string bytes, std::string source) {
  SafetensorsFile f;
  f.source_ = std::move(source);
  f.storage_ = std::make_unique<Storage>();
  f.storage_->bytes = std::move(bytes);
  f.parse_header();
  return f;
}

void SafetensorsFile::parse_header() {
  const std::string_view all = storage_->file ? storage_->file->bytes() : std::string_view(storage_->bytes);
  auto fail = [&](const std::string& what) { return ModelError(fmt::format("{}: not a valid safetensors file: {}", source_, what)); };
  if (all.size() < 8) throw fail("shorter than its 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(all[static_cast<std::size_t>(i)]);
  if (n > kMaxHeader || n > all.size() - 8) throw fail(fmt::format("header length {} exceeds the file", n));
  buffer_ = all.substr(8 + n);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(all.substr(8, n));
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("header is not JSON ({})", e.what()));
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail(fmt::format("metadata '{}' is not a string", k));
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets")) {
      throw fail(fmt::format("tensor '{}' lacks dtype, shape or data_offsets", name));
    }
    TensorInfo info;
    info.name = name;
    const auto& dtype = entry["dtype"];
    bool known = false;
    if (dtype.is_string()) {
      for (const auto& d : kDTypes) {
        if (d.name == dtype.get<std::string>()) {
          info.dtype = d.dtype;
          known = true;
        }
      }
    }
    if (!known) throw fail(fmt::format("tensor '{}' has unsupported dtype {}", name, dtype.dump()));
    const auto& shape = entry["shape"];
    const auto& offsets = entry["data_offsets"];
    if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2) throw fail(fmt::format("tensor '{}' has a malformed shape or offsets", name));
    std::uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) throw fail(fmt::format("tensor '{}' has a negative or non-integer dimension", name));
      const auto dim = d.get<std::uint64_t>();
      if (dim != 0 && numel > (std::uint64_t{1} << 48) / dim) throw fail(fmt::format("tensor '{}' is implausibly large", name));
      numel *= dim;
      info.shape.push_back(static_cast<std::int64_t>(dim));
    }
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) throw fail(fmt::format("tensor '{}' has bad offsets", name));
    const auto begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > buffer_.size()) {
      throw fail(fmt::format("tensor '{}' data [{}, {}) lies outside the {}-byte buffer (truncated file?)", name, begin, end, buffer_.size()));
    }
    if (end - begin != numel * dtype_size(info.dtype)) {
      throw fail(fmt::format("tensor '{}' has {} bytes for shape {} of {}", name, end - begin, shape.dump(), dtype_name(info.dtype)));
    }
    info.begin = static_cast<std::size_t>(begin);
    info.end = static_cast<std::size_t>(end);
    tensors_.push_back(std::move(info));
  }
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < tensors_.size(); ++i) {
    if (tensors_[i].begin < tensors_[i - 1].end) {
      throw fail(fmt::format("tensors '{}' and '{}' overlap", tensors_[i - 1].name, tensors_[i].name));
    }
  }
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::span<const std::byte> SafetensorsFile::data(const TensorInfo& info) const {
  return std::as_bytes(std::span<const char>(buffer_.data() + info.begin, info.end - info.begin));
}

std::string serialize_safetensors(const std::vector<TensorView>& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorView*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorView* a, const TensorView* b) { return a->name < b->name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto* t : sorted) {
    std::uint64_t numel = 1;
    for (auto d : t->shape) numel *= static_cast<std::uint64_t>(d);
    if (numel * dtype_size(t->dtype) != t->bytes.size()) {
      throw ModelError(fmt::format("tensor '{}': {} bytes do not match its shape", t->name, t->bytes.size()));
    }
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->bytes.size()}}};
    offset += t->bytes.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string out(8, '\0');
  std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  out += json;
  for (const auto* t : sorted) out.append(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  core::write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace flipless::io
