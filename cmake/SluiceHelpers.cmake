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

# sluice_test(NAME SOURCES ... DEPS ... LABELS ... [TIMEOUT s] [COST s])
#   A GoogleTest executable registered with ctest, one ctest entry per binary
#   (gtest_discover_tests would run every binary at build time).
#   COST: the test's usual run time in seconds. A clean clone (CI) has no
#   CTestCostData.txt, so `ctest -j` would start tests in declaration order;
#   with COST the long ones start first instead of last, leaving no core idle
#   at the end of the run. Give it for tests that run 10 s or more.
function(sluice_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT;COST" "SOURCES;DEPS;LABELS" ${ARGN})
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
  if(ARG_COST)
    set_tests_properties(${NAME} PROPERTIES COST ${ARG_COST})
  endif()
endfunction()

# sluice_test_objects(NAME SOURCES ... DEPS ...)
#   Test sources that several test binaries share (the integration tests'
#   process and support helpers, references, a conformance suite), compiled
#   once: an OBJECT library each binary lists in its DEPS. Its objects are
#   linked into every such binary whole (static test registrations
#   included), so each binary runs exactly what it ran when it compiled the
#   files itself. Object libraries do not pass their objects on: a binary
#   lists every one it uses.
function(sluice_test_objects NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${NAME} OBJECT ${ARG_SOURCES})
  target_include_directories(${NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${NAME} PUBLIC ${ARG_DEPS} GTest::gtest GTest::gmock)
endfunction()
