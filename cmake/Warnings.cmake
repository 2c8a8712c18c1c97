# Every edgecoder target links edgecoder_options; nothing is set globally, so third-party code
# and the fuzz build (clang) are unaffected.
add_library(edgecoder_options INTERFACE)
target_compile_options(edgecoder_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wold-style-cast
  -Wcast-align -Wformat=2 -Wimplicit-fallthrough -Wsuggest-override
  $<$<CXX_COMPILER_ID:GNU>:-Wduplicated-cond -Wlogical-op>
  # GCC 12 at -O2 reports a coroutine frame's own operator delete as mismatched with its
  # operator new (a false positive on Asio awaitables, gone in later GCC releases).
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-mismatched-new-delete>
  # In a unity build each .cpp is #included into a generated file, so GCC takes it for a header
  # and flags every anonymous-namespace type held in a coroutine frame (-Wsubobject-linkage).
  # The warning is about headers; the non-unity presets keep it.
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<BOOL:${CMAKE_UNITY_BUILD}>>:-Wno-subobject-linkage>
  $<$<BOOL:${EDGECODER_WERROR}>:-Werror>)
target_compile_definitions(edgecoder_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_NO_DEPRECATED
  EDGECODER_VERSION="${PROJECT_VERSION}")
if(EDGECODER_SANITIZE)
  target_compile_options(edgecoder_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(edgecoder_options INTERFACE -fsanitize=address,undefined)
endif()
