# edgecoder_library(NAME core SRCS a.cpp DEPS ... PRIVATE_DEPS ...)
# Folder = static library = namespace: src/core -> edgecoder_core (alias edgecoder::core).
function(edgecoder_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(edgecoder_${A_NAME} STATIC ${A_SRCS})
  add_library(edgecoder::${A_NAME} ALIAS edgecoder_${A_NAME})
  target_include_directories(edgecoder_${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(edgecoder_${A_NAME} PUBLIC edgecoder_options ${A_DEPS}
                        PRIVATE ${A_PRIVATE_DEPS})
endfunction()

# edgecoder_test(NAME net SRCS net/x_test.cpp DEPS edgecoder::net)
# One test executable per subsystem keeps link count low.
function(edgecoder_test)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(test_${A_NAME} ${A_SRCS})
  # Test files keep file-local fixtures with common names; never merge them into one TU.
  set_target_properties(test_${A_NAME} PROPERTIES UNITY_BUILD OFF)
  target_include_directories(test_${A_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(test_${A_NAME} PRIVATE edgecoder_options ${A_DEPS} GTest::gmock
                        GTest::gtest_main)
  target_compile_definitions(test_${A_NAME} PRIVATE
    EDGECODER_BINARY_PATH="$<TARGET_FILE:edgecoder>"
    EDGECODER_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_dependencies(test_${A_NAME} edgecoder)
  gtest_discover_tests(test_${A_NAME} DISCOVERY_MODE PRE_TEST PROPERTIES TIMEOUT 300)
endfunction()
