#include "flipless/core/hash.h"

#include <fmt/format.h>

#include <fstream>

#include "flipless/core/error.h"

namespace flipless::core {

namespace {
std::uint64_t splitmix_finalise(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

std::uint64_t hash64(std::string_view bytes, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ splitmix_finalise(seed);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return splitmix_finalise(h);
}

std::uint64_t hash_combine(std::uint64_t a, std::uint64_t b) {
  return splitmix_finalise(a ^ (b * 0x9e3779b97f4a7c15ULL));
}

std::uint64_t hash_file(const std::filesystem::path& path, std::uint64_t seed) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot open", path.string()));
  std::string chunk(1 << 20, '\0');
  std::uint64_t h = seed;
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    h = hash_combine(h, hash64(std::string_view(chunk.data(), static_cast<std::size_t>(in.gcount()))));
  }
  return h;
}

std::string content_id(std::string_view text_a, const std::optional<std::string>& text_b) {
  std::uint64_t h = hash64(text_a);
  if (text_b) h = hash_combine(h, hash64(*text_b, 1));
  return fmt::format("h{:016x}", h);
}

}  // namespace flipless::core
