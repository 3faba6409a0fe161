# Use ccache when present: rebuilds after a clean or a branch switch take seconds.
find_program(FLIPLESS_CCACHE ccache)
if(FLIPLESS_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${FLIPLESS_CCACHE}")
endif()
