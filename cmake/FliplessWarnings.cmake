# Warnings come from an interface target that every flipless target links; CMAKE_CXX_FLAGS
# stays untouched.
add_library(flipless_warnings INTERFACE)
target_compile_options(flipless_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wformat=2>
  $<$<BOOL:${FLIPLESS_WERROR}>:-Werror>
  $<$<BOOL:${FLIPLESS_NATIVE}>:-march=native>)
