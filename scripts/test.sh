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

phase "npm packages (tests/ide/js, tests/control/js)"
# The official openai and ollama npm packages, and playwright-core (it drives Debian's chromium
# for the dashboard test; it downloads no browser), at the versions package-lock.json pins.
# Debian 12 ships npm apart from nodejs (a NodeSource nodejs brings its own).
if ! command -v npm >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm
fi
npm ci --prefix tests/ide/js --no-audit --no-fund --loglevel=error
npm ci --prefix tests/control/js --no-audit --no-fund --loglevel=error

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

# The sandbox suite once more as an unprivileged user: bubblewrap then works through
# unprivileged user namespaces, as under the packaged service (User=edgecoder). Run as root,
# a dedicated account is created for it; run unprivileged, ctest already covered that case.
SANDBOX_TEST_USER=edgecoder-sandbox-ci
sandbox_unprivileged() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id -u "$SANDBOX_TEST_USER" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/var/tmp/$SANDBOX_TEST_USER" \
      --shell /usr/sbin/nologin "$SANDBOX_TEST_USER"
  fi
  local home bin="$PWD/build/$1/tests/sandbox/test_sandbox"
  home=$(getent passwd "$SANDBOX_TEST_USER" | cut -d: -f6)
  chmod o+x "$PWD" "$PWD/build" "$PWD/build/$1"
  if ! runuser -u "$SANDBOX_TEST_USER" -- test -x "$bin"; then
    echo "$SANDBOX_TEST_USER cannot reach $bin: make its parent directories traversable" >&2
    return 1
  fi
  # Sequential on purpose: one user's processes share one RLIMIT_NPROC budget.
  timeout 1200 runuser -u "$SANDBOX_TEST_USER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
    HOME="$home" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$bin" --gtest_brief=1
}

for preset in ci-debug ci-asan; do
  phase "$preset build"
  cmake --preset "$preset" >/dev/null
  timeout 2400 cmake --build --preset "$preset"
  phase "$preset test"
  timeout 1200 ctest --preset "$preset"
  phase "$preset sandbox tests as an unprivileged user"
  sandbox_unprivileged "$preset"
done

phase fuzz
fuzz/run.sh 30

echo "slowest translation units (ci-asan):"
# awk, not head, takes the first ten: head would exit early, and sort's SIGPIPE would fail the
# run under pipefail once the log is long.
awk 'NR>1{printf "%6.1fs %s\n",($2-$1)/1000,$4}' build/ci-asan/.ninja_log | sort -rn |
  awk 'NR<=10'
ccache -s 2>/dev/null | grep -E 'Hits|Misses' || true
phase done
