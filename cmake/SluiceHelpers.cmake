# sluice_library(NAME SOURCES ... DEPS ...)
#   One folder = one shared library `sluice_<NAME>` (alias sluice::<NAME>).
#   Shared, so the `sluice` binary and dlopen()ed job libraries use one copy
#   of every engine type, registry and vtable.
function(sluice_library NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  if(ARG_SOURCES)
    add_library(sluice_${NAME} SHARED ${ARG_SOURCES})
    target_include_directories(sluice_${NAME} PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
      $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}>)
    target_link_libraries(sluice_${NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
    # Libraries of the test suite (tests/...) are not part of an install.
    if(NOT CMAKE_CURRENT_SOURCE_DIR MATCHES "^${PROJECT_SOURCE_DIR}/tests(/|$)")
      install(TARGETS sluice_${NAME} LIBRARY DESTINATION lib)
    endif()
  else()
    add_library(sluice_${NAME} INTERFACE)
    target_include_directories(sluice_${NAME} INTERFACE
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
      $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}>)
    target_link_libraries(sluice_${NAME} INTERFACE ${ARG_DEPS})
  endif()
  add_library(sluice::${NAME} ALIAS sluice_${NAME})
endfunction()

# sluice_test(NAME SOURCES ... DEPS ... LABELS ... [TIMEOUT s])
#   A GoogleTest executable registered with ctest, one ctest entry per binary
#   (gtest_discover_tests would run every binary at build time).
function(sluice_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${NAME} ${ARG_SOURCES})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  add_test(NAME ${NAME} COMMAND ${NAME})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "SLUICE_BUILD_DIR=${PROJECT_BINARY_DIR};SLUICE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
