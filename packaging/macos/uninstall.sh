#!/bin/sh
# Removes EdgeCoder installed by the .pkg: sudo /usr/local/share/edgecoder/uninstall.sh [--purge]
# Keeps /etc/edgecoder and the node's data unless --purge is given (as the .deb does).
# Not verified on Linux build machines (see docs/packaging.md).
set -eu
LABEL=io.edgecoder.runtime
purge=no
[ "${1:-}" = "--purge" ] && purge=yes
if [ "$(id -u)" -ne 0 ]; then
  echo "run it as root: sudo $0 $*" >&2
  exit 1
fi
/bin/launchctl bootout "system/$LABEL" 2>/dev/null || true
rm -f "/Library/LaunchDaemons/$LABEL.plist" /usr/local/bin/edgecoder
rm -rf /usr/local/lib/edgecoder /usr/local/share/edgecoder
pkgutil --forget "$LABEL" >/dev/null 2>&1 || true
if [ "$purge" = yes ]; then
  rm -rf /etc/edgecoder /usr/local/var/edgecoder /var/log/edgecoder
  dscl . -delete /Users/_edgecoder 2>/dev/null || true
  dscl . -delete /Groups/_edgecoder 2>/dev/null || true
fi
echo "EdgeCoder removed (purge: $purge)"
