# strowger_library(NAME SRCS ... DEPS ...)
#   One static library per module, named strowger_<NAME>. DEPS are the only modules and
#   third-party targets it may use, so a wrong dependency arrow fails at link time.
function(strowger_library NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(strowger_${NAME} STATIC ${ARG_SRCS})
  target_include_directories(strowger_${NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(strowger_${NAME} PUBLIC ${ARG_DEPS})
  target_compile_options(strowger_${NAME} PRIVATE ${STROWGER_WARNINGS})
endfunction()

# strowger_test(NAME SRCS ... DEPS ... [TIMEOUT seconds] [LABELS ...])
#   A GoogleTest binary; every test case gets a timeout so a hang fails instead of stalling CI.
function(strowger_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_options(${NAME} PRIVATE ${STROWGER_WARNINGS})
  if(STROWGER_SANITIZE)
    # The sanitizer builds compile the tests themselves without optimisation: what runs under
    # the sanitizer is the engine's code (its libraries and the strowger binary, at -O1), and
    # the test binaries are half of those builds (docs/testing.md, "CI").
    target_compile_options(${NAME} PRIVATE -O0)
  endif()
  # Test names are prefixed with the binary ("model_test.ValidateTest.Bad..."), so
  # `ctest -R model_test` selects a binary; the source dir and binary path are compiled into
  # the test support library (tests/testing), so no environment is needed.
  set(props TIMEOUT ${ARG_TIMEOUT})
  if(ARG_LABELS)
    list(APPEND props LABELS "${ARG_LABELS}")
  endif()
  gtest_discover_tests(${NAME} TEST_PREFIX "${NAME}." PROPERTIES ${props} DISCOVERY_TIMEOUT 60)
endfunction()
