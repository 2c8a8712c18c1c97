#!/usr/bin/env bash
# README command 1: install what is missing, build the release binary, and run the all-in-one
# node (coordinator :4301, inference :4302, control plane :4303) on 127.0.0.1 with its embedded
# store under the data directory. Extra arguments go to edgecoder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target edgecoder
exec build/release/src/app/edgecoder "$@"
