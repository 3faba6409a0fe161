#pragma once
// Content hashes used for stable example ids and deterministic splits.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace flipless::core {

// 64-bit FNV-1a of the bytes, passed through a SplitMix64 finaliser for good bit mixing.
std::uint64_t hash64(std::string_view bytes, std::uint64_t seed = 0);

// hash_combine of hash64 over a file's 1 MiB chunks, seeded by `seed`: the fingerprint of a
// large file (weights, index snapshots). Throws IoError when it cannot be read.
std::uint64_t hash_file(const std::filesystem::path& path, std::uint64_t seed = 0);

// Mixes one 64-bit value into another (SplitMix64 finaliser of a ^ b * golden ratio).
std::uint64_t hash_combine(std::uint64_t a, std::uint64_t b);

// A stable id for an example without an id column: "h" + 16 hex digits of the hash of its
// text(s). The pair separator keeps ("ab", "c") and ("a", "bc") apart.
std::string content_id(std::string_view text_a, const std::optional<std::string>& text_b);

}  // namespace flipless::core
