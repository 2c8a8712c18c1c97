#!/usr/bin/env bash
# Builds the HTTP request parser + router fuzz target with clang-14 (only the files it needs)
# and runs it for at most $1 seconds (default 30) from the seed corpus; exits non-zero on a
# crash. ASan only: clang-14 with fuzzer+address+undefined together fails on coroutine code
# ("Cannot represent a difference across sections"); UBSan runs in the GCC ci-asan build.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
out=build/fuzz
mkdir -p "$out" "$out/corpus"
cp -n fuzz/corpus/* "$out/corpus/" 2>/dev/null || true
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address
       -DBOOST_ASIO_NO_DEPRECATED -DBOOST_BEAST_NO_DEPRECATED -DEDGECODER_VERSION=\"fuzz\"
       -Isrc)
srcs=(fuzz/http_request_fuzz.cpp src/net/http.cpp src/net/router.cpp src/core/result.cpp
      src/core/log.cpp)
if [ ! -x "$out/http_request_fuzz" ] || [ -n "$(find "${srcs[@]}" src/net/*.h src/core/*.h -newer "$out/http_request_fuzz")" ]; then
  echo "building fuzz target with clang++-14"
  clang++-14 "${flags[@]}" "${srcs[@]}" -o "$out/http_request_fuzz" \
    -DSPDLOG_COMPILED_LIB -DSPDLOG_SHARED_LIB -DSPDLOG_FMT_EXTERNAL -lspdlog -lfmt -pthread
fi
"$out/http_request_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" 2>&1 | tail -n 12
