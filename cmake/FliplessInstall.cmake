# cmake --install puts the binary, the headers, the static libraries, the bundled data and a
# CMake package (find_package(flipless) -> flipless::metrics, flipless::data, ...).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(flipless_installed flipless_core flipless_metrics flipless_data flipless_text flipless_io flipless_ensemble flipless_compare
    flipless_report flipless_methods flipless_experiment)
if(FLIPLESS_WITH_CACHE)
  list(APPEND flipless_installed flipless_cache)
endif()
install(TARGETS ${flipless_installed}
        EXPORT fliplessTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET flipless_fmt)  # header-only fmt from libtorch's include folder (CMakeLists.txt)
  install(TARGETS flipless_fmt EXPORT fliplessTargets)
endif()
install(TARGETS flipless RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/bundled/ DESTINATION ${CMAKE_INSTALL_DATADIR}/flipless/data)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/flipless/configs)
install(EXPORT fliplessTargets NAMESPACE flipless:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flipless)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/fliplessConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/fliplessConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flipless)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fliplessConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fliplessConfig.cmake ${PROJECT_BINARY_DIR}/fliplessConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flipless)
