#!/bin/sh
# Container health check: GET /health from the service EDGE_RUNTIME_MODE runs (the first one
# for all-in-one). An agent has no listener, so it is healthy while its process runs.
set -eu

mode=${EDGE_RUNTIME_MODE:-all-in-one}
case "$mode" in
  all-in-one|coordinator) port=${COORDINATOR_PORT:-4301} ;;
  inference) port=${INFERENCE_PORT:-4302} ;;
  control-plane) port=${CONTROL_PLANE_PORT:-4303} ;;
  ide-provider) port=${IDE_PROVIDER_PORT:-4304} ;;
  portal) port=${PORTAL_PORT:-4310} ;;
  anchor-proxy) port=${ANCHOR_PROXY_PORT:-4311} ;;
  agent|worker)
    for proc in /proc/[0-9]*; do
      if [ "$(cat "$proc/comm" 2>/dev/null)" = edgecoder ]; then
        exit 0
      fi
    done
    echo "edgecoder-healthcheck: no edgecoder process" >&2
    exit 1
    ;;
  *)
    echo "edgecoder-healthcheck: unknown EDGE_RUNTIME_MODE '$mode'" >&2
    exit 1
    ;;
esac

host=${EDGECODER_BIND:-127.0.0.1}
case "$host" in
  0.0.0.0) host=127.0.0.1 ;;
  ::|"[::]") host="[::1]" ;;
  *:*) host="[$host]" ;;
esac
scheme=http
if [ -n "${TLS_CERT_FILE:-}" ]; then
  # Our own listener on a local address: the certificate names the public host, not this one.
  scheme=https
fi
exec curl --fail --silent --show-error --insecure --max-time 4 --output /dev/null \
  "$scheme://$host:$port/health"
