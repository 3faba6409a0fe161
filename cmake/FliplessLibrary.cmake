# flipless_library(NAME SOURCES...): a static library flipless_NAME with alias flipless::NAME,
# public headers from include/flipless/NAME, warnings and sanitizers on.
function(flipless_library name)
  add_library(flipless_${name} STATIC ${ARGN})
  add_library(flipless::${name} ALIAS flipless_${name})
  set_target_properties(flipless_${name} PROPERTIES EXPORT_NAME ${name} POSITION_INDEPENDENT_CODE ON)
  file(GLOB_RECURSE headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/include/flipless/${name}/*.h")
  target_sources(flipless_${name} PUBLIC FILE_SET HEADERS BASE_DIRS "${PROJECT_SOURCE_DIR}/include" FILES ${headers})
  target_link_libraries(flipless_${name} PRIVATE $<BUILD_INTERFACE:flipless_warnings>
                        PUBLIC $<BUILD_INTERFACE:flipless_sanitizers>)
endfunction()
