#!/usr/bin/env bash
# GET /health throughput and latency: edgecoder (release build) next to nginx answering a fixed
# JSON body, same machine, same wrk settings, interleaved runs. Prints one line per run and the
# medians. Usage: bench/http_health.sh [runs=5] [seconds=10]
# Needs: wrk, nginx (Debian packages) and build/release/src/app/edgecoder.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-10}
bin=build/release/src/app/edgecoder
[ -x "$bin" ] || { echo "build the release preset first" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f $work/nginx.pid ] && kill $(cat $work/nginx.pid) 2>/dev/null; rm -rf $work' EXIT

cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:18080;
    location /health { default_type application/json; return 200 '{"ok":true,"service":"nginx"}'; }
  }
}
NGINX
nginx -c "$work/nginx.conf"

EDGECODER_DATA_DIR="$work/data" EDGECODER_LOG_LEVEL=warn EDGE_RUNTIME_MODE=inference \
  EDGECODER_INSECURE_DEV=1 INFERENCE_PORT=18081 "$bin" 2>"$work/edgecoder.log" &
for _ in $(seq 100); do curl -sf 127.0.0.1:18081/health >/dev/null && break; sleep 0.1; done

run_wrk() {  # name url conns -> "rps p50_ms p99_ms"
  wrk -t2 -c"$3" -d"${secs}s" --latency "$2" | awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    END {printf "%s %.3f %.3f\n", rps, ms(p50), ms(p99)}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "runs=$runs seconds=$secs"
for c in 2 16 64; do
  : > "$work/e.$c"; : > "$work/n.$c"
  for r in $(seq "$runs"); do
    e=$(run_wrk edgecoder http://127.0.0.1:18081/health "$c"); echo "$e" >> "$work/e.$c"
    n=$(run_wrk nginx http://127.0.0.1:18080/health "$c"); echo "$n" >> "$work/n.$c"
    echo "c=$c run=$r edgecoder[rps p50 p99]=$e nginx=$n"
  done
done
echo
echo "| connections | edgecoder req/s | p50 ms | p99 ms | nginx req/s | p50 ms | p99 ms | ratio |"
echo "|---|---|---|---|---|---|---|---|"
for c in 2 16 64; do
  er=$(cut -d' ' -f1 "$work/e.$c" | median); e50=$(cut -d' ' -f2 "$work/e.$c" | median); e99=$(cut -d' ' -f3 "$work/e.$c" | median)
  nr=$(cut -d' ' -f1 "$work/n.$c" | median); n50=$(cut -d' ' -f2 "$work/n.$c" | median); n99=$(cut -d' ' -f3 "$work/n.$c" | median)
  echo "| $c | $er | $e50 | $e99 | $nr | $n50 | $n99 | $(awk -v a="$er" -v b="$nr" 'BEGIN{printf "%.2f", a/b}') |"
done
