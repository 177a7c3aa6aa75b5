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
  gtest_discover_tests(${NAME}
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
               ENVIRONMENT "STROWGER_SOURCE_DIR=${PROJECT_SOURCE_DIR};STROWGER_BINARY=$<TARGET_FILE:strowger>"
    DISCOVERY_TIMEOUT 60)
endfunction()
