# Packages, built from this build tree's edgecoder binary (docs/packaging.md):
#
#   cmake --build build/<preset> --target package
#     Linux: build/<preset>/EdgeCoder-<version>-linux-<arch>.deb   (packaging/debian/build-deb.sh)
#     macOS: build/<preset>/EdgeCoder-<version>-macos-<arch>.pkg   (packaging/macos/build-pkg.sh;
#            the universal .pkg is assembled by the release workflow from two builds)
#
# No CPack: the scripts are the one code path, also used by tests/packaging to build version N
# and N+1 for the upgrade test. (`package` is a plain custom target; do not include(CPack).)

# The Ed25519 public key `edgecoder release verify` trusts by default (base64 of the raw 32
# bytes). Empty = the project's release key in src/app/release_verify.cpp. A test or private
# build may embed its own.
set(EDGECODER_RELEASE_PUBLIC_KEY "" CACHE STRING
    "base64 Ed25519 release public key for `edgecoder release verify` (empty = project key)")
if(EDGECODER_RELEASE_PUBLIC_KEY AND EXISTS ${PROJECT_SOURCE_DIR}/src/app/release_verify.cpp)
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/app/release_verify.cpp
    DIRECTORY ${PROJECT_SOURCE_DIR}/src/app
    PROPERTIES COMPILE_DEFINITIONS "EDGECODER_RELEASE_PUBLIC_KEY=\"${EDGECODER_RELEASE_PUBLIC_KEY}\"")
endif()

if(NOT TARGET edgecoder)
  return()
endif()

if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_custom_target(package
    COMMAND sh ${PROJECT_SOURCE_DIR}/packaging/debian/build-deb.sh
            --binary $<TARGET_FILE:edgecoder> --version ${PROJECT_VERSION}
            --out ${PROJECT_BINARY_DIR}
    DEPENDS edgecoder
    COMMENT "Building EdgeCoder-${PROJECT_VERSION}-linux .deb"
    VERBATIM)
elseif(APPLE)
  add_custom_target(package
    COMMAND sh ${PROJECT_SOURCE_DIR}/packaging/macos/build-pkg.sh
            --binary $<TARGET_FILE:edgecoder> --version ${PROJECT_VERSION}
            --out ${PROJECT_BINARY_DIR}
    DEPENDS edgecoder
    COMMENT "Building the EdgeCoder ${PROJECT_VERSION} macOS .pkg"
    VERBATIM)
endif()
