# FLIPLESS_SANITIZE=address,undefined builds every flipless target with those sanitizers;
# UBSan findings abort so tests fail on them.
add_library(flipless_sanitizers INTERFACE)
if(FLIPLESS_SANITIZE)
  target_compile_options(flipless_sanitizers INTERFACE -fsanitize=${FLIPLESS_SANITIZE} -fno-omit-frame-pointer
                                                       -fno-sanitize-recover=all)
  target_link_options(flipless_sanitizers INTERFACE -fsanitize=${FLIPLESS_SANITIZE})
endif()
