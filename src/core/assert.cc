#include "flipless/core/assert.h"

#include <cstdio>
#include <cstdlib>

namespace flipless::detail {

void assert_fail(const char* expr, const char* msg, const char* file, int line) {
  std::fprintf(stderr, "flipless: internal error at %s:%d: assertion '%s' failed: %s\n", file, line,
               expr, msg);
  std::abort();
}

}  // namespace flipless::detail
