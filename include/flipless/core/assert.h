#pragma once
// FLIPLESS_ASSERT: checks an internal invariant in every build type and aborts with the
// location when it fails. For bugs only; user errors throw flipless::Error.

namespace flipless::detail {
[[noreturn]] void assert_fail(const char* expr, const char* msg, const char* file, int line);
}  // namespace flipless::detail

#define FLIPLESS_ASSERT(cond, msg)                                         \
  do {                                                                     \
    if (!(cond)) ::flipless::detail::assert_fail(#cond, msg, __FILE__, __LINE__); \
  } while (false)
