#!/bin/sh
# Builds EdgeCoder-<version>-linux-<arch>.deb from an already built `edgecoder` binary.
#
#   packaging/debian/build-deb.sh --binary build/release/src/app/edgecoder --version 0.1.0 \
#       --out build/release
#
# `cmake --build build/<preset> --target package` runs it with the build's binary and the
# project version (packaging/Packaging.cmake). Needs dpkg-dev (dpkg-shlibdeps), binutils (strip)
# and gzip. The package is built with dpkg-deb --root-owner-group, so it needs no fakeroot.
# Honours SOURCE_DATE_EPOCH for reproducible file times.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
packaging=$(dirname "$here")
binary=
version=
out=.
arch=$(dpkg --print-architecture)

usage() {
  echo "usage: $0 --binary PATH --version X.Y.Z [--out DIR] [--arch ARCH]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?}; shift 2 ;;
    --version) version=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --arch) arch=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$binary" ] && [ -n "$version" ] || usage
[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 1; }
case "$version" in
  [0-9]*) ;;
  *) echo "$0: version must start with a digit: $version" >&2; exit 2 ;;
esac

epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/edgecoder-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
# Staged where dpkg-shlibdeps expects a package's files.
root="$work/src/debian/edgecoder"
umask 022

# Payload.
install -d "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/edgecoder" \
  "$root/usr/share/doc/edgecoder" "$root/usr/share/man/man1"
# Stripped: the package carries no debug information (keep the unstripped binary for that).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  -o "$root/usr/bin/edgecoder" "$binary"
chmod 0755 "$root/usr/bin/edgecoder"
install -m 0644 "$packaging/systemd/edgecoder.service" "$root/lib/systemd/system/"
install -m 0644 "$here/edgecoder.env" "$root/etc/edgecoder/edgecoder.env"
install -m 0644 "$here/copyright" "$root/usr/share/doc/edgecoder/copyright"
if [ -f "$packaging/../README.md" ]; then
  install -m 0644 "$packaging/../README.md" "$root/usr/share/doc/edgecoder/README.md"
fi
gzip -9n -c "$here/edgecoder.1" >"$root/usr/share/man/man1/edgecoder.1.gz"
date=$(date -u -R -d "@$epoch")
cat >"$work/changelog" <<EOF
edgecoder ($version) unstable; urgency=medium

  * EdgeCoder $version.

 -- EdgeCoder <ops@edgecoder.io>  $date
EOF
gzip -9n -c "$work/changelog" >"$root/usr/share/doc/edgecoder/changelog.gz"

install -d "$root/DEBIAN"
# Shared-library dependencies of the binary as shipped (an ASan build adds libasan/libubsan).
printf 'Source: edgecoder\n\nPackage: edgecoder\nArchitecture: any\n' >"$work/src/debian/control"
(cd "$work/src" && dpkg-shlibdeps -O debian/edgecoder/usr/bin/edgecoder) >"$work/shlibdeps.out"
shlibs=$(sed -n 's/^shlibs:Depends=//p' "$work/shlibdeps.out")
[ -n "$shlibs" ] || { echo "$0: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

# Control area.
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
echo /etc/edgecoder/edgecoder.env >"$root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: edgecoder
Version: $version
Architecture: $arch
Maintainer: EdgeCoder <ops@edgecoder.io>
Installed-Size: $installed_size
Depends: adduser, $shlibs
Recommends: bubblewrap, ca-certificates, python3, nodejs
Suggests: postgresql
Section: net
Priority: optional
Homepage: https://edgecoder.io
Description: self-hosted, privacy-first AI coding mesh
 EdgeCoder splits coding tasks into subtasks with an LLM, hands them to
 worker agents that solve them with a local model and check the code in a
 sandbox, and assembles the answer. Operators govern the mesh; IDEs use a
 local OpenAI-compatible endpoint.
 .
 This package installs the edgecoder binary, which runs every part of the
 mesh, and the edgecoder systemd service, enabled on installation as an
 all-in-one node listening on 127.0.0.1. Settings live in
 /etc/edgecoder/edgecoder.env, state in /var/lib/edgecoder.
EOF
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$epoch" {} +

deb="$out/EdgeCoder-$version-linux-$arch.deb"
# DEB_COMPRESSION: xz (default, what releases use) or gzip/none for quick test builds.
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-xz}" --build "$root" \
  "$deb" >/dev/null
echo "$deb"
