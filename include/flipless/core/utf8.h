#pragma once
// UTF-8 validation for text read from user files.
#include <cstddef>
#include <optional>
#include <string_view>

namespace flipless::core {

// The byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code
// points above U+10FFFF count as invalid), or nullopt when the whole string is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

}  // namespace flipless::core
