#!/usr/bin/env bash
# Installs the Debian 12 packages EdgeCoder builds, tests and runs with (.ci/deps.txt), only
# those missing. Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t want < <(tr ' ' '\n' < .ci/deps.txt | grep -v '^$')
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${want[@]}" 2>&1 |
  awk '!/^ii /{print $NF}' || true)
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: $(echo $missing)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi
