#!/usr/bin/env bash
# README command 2 (and CI): install what is missing, check formatting, start a throwaway
# PostgreSQL on a Unix socket, build the debug and ASan+UBSan presets (unity builds) and run
# every test in both, then the fuzz target for up to 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
phase() { echo "::: $1 ($((SECONDS - t0))s)"; }

phase deps
scripts/deps.sh

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_MAXSIZE=5G CCACHE_COMPILERCHECK=content
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime

phase format
git ls-files '*.cpp' '*.h' | xargs -r clang-format --dry-run --Werror

phase postgres
PGBIN=/usr/lib/postgresql/15/bin
PGROOT=$(mktemp -d /tmp/edgecoder-pg.XXXXXX)
chmod 755 "$PGROOT"
chown postgres "$PGROOT" 2>/dev/null || true
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PGBIN/initdb" -D "$PGROOT/data" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -o "-k $PGROOT -c listen_addresses='' -c fsync=off" \
  -l "$PGROOT/log" -w start >/dev/null
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGROOT"
}
trap cleanup EXIT
export EDGECODER_TEST_PG_DSN="host=$PGROOT user=postgres dbname=postgres"

for preset in ci-debug ci-asan; do
  phase "$preset build"
  cmake --preset "$preset" >/dev/null
  timeout 2400 cmake --build --preset "$preset"
  phase "$preset test"
  timeout 1200 ctest --preset "$preset"
done

phase fuzz
fuzz/run.sh 30

echo "slowest translation units (ci-asan):"
awk 'NR>1{printf "%6.1fs %s\n",($2-$1)/1000,$4}' build/ci-asan/.ninja_log | sort -rn | head -10
ccache -s 2>/dev/null | grep -E 'Hits|Misses' || true
phase done
