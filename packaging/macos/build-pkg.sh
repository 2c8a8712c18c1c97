#!/bin/sh
# Builds EdgeCoder-<version>-macos-universal.pkg (-macos-<arch>.pkg from a single binary): a
# universal (arm64 + x86_64) edgecoder with its non-system dylibs, the io.edgecoder.runtime
# LaunchDaemon, the settings template and an uninstaller. Runs on macOS (pkgbuild, productbuild,
# lipo, otool, install_name_tool); the release workflow runs it on a macOS runner. Not verified
# on the Linux build machines.
#
#   packaging/macos/build-pkg.sh --version 0.1.0 --out dist \
#       --binary arm64/edgecoder --binary x86_64/edgecoder
#
# Each --binary is one architecture's build (a single already-universal binary works too).
# Signing is optional: set PKG_SIGN_IDENTITY ("Developer ID Installer: ...") to productsign,
# and APP_SIGN_IDENTITY ("Developer ID Application: ...") to codesign the binary and dylibs
# with the hardened runtime first.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
packaging=$(dirname "$here")
version=
out=.
binaries=
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --binary) binaries="$binaries ${2:?}"; shift 2 ;;
    *) echo "usage: $0 --version X.Y.Z --binary PATH [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$version" ] || [ -z "$binaries" ]; then
  echo "$0: --version and --binary are required" >&2
  exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/edgecoder-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root="$work/root"
libdir=/usr/local/lib/edgecoder
install -d "$root/usr/local/bin" "$root$libdir" "$root/usr/local/share/edgecoder" \
  "$root/Library/LaunchDaemons"

# Non-system dylibs a Mach-O file loads (Homebrew's, typically), transitively.
deps_of() {
  otool -L "$1" | tail -n +2 | awk '{print $1}' |
    grep -v -E '^(/usr/lib/|/System/|@rpath/|@executable_path/|@loader_path/)' || true
}

# Per architecture: copy the binary and its dylibs, point them at $libdir.
n=0
for bin in $binaries; do
  n=$((n + 1))
  stage="$work/arch$n"
  install -d "$stage/lib"
  cp "$bin" "$stage/edgecoder"
  chmod u+w "$stage/edgecoder"
  queue="$stage/edgecoder"
  while [ -n "$queue" ]; do
    next=
    for file in $queue; do
      for dep in $(deps_of "$file"); do
        name=$(basename "$dep")
        if [ ! -e "$stage/lib/$name" ]; then
          cp "$dep" "$stage/lib/$name"
          chmod u+w "$stage/lib/$name"
          install_name_tool -id "$libdir/$name" "$stage/lib/$name"
          next="$next $stage/lib/$name"
        fi
        install_name_tool -change "$dep" "$libdir/$name" "$file"
      done
    done
    queue=$next
  done
done

# Merge the architectures: the binary and each dylib by name.
if [ "$n" -eq 1 ]; then
  cp "$work/arch1/edgecoder" "$root/usr/local/bin/edgecoder"
  cp "$work/arch1/lib/"* "$root$libdir/" 2>/dev/null || true
else
  lipo -create -output "$root/usr/local/bin/edgecoder" "$work"/arch*/edgecoder
  for lib in "$work"/arch1/lib/*; do
    [ -e "$lib" ] || continue
    name=$(basename "$lib")
    lipo -create -output "$root$libdir/$name" "$work"/arch*/lib/"$name"
  done
fi
lipo -info "$root/usr/local/bin/edgecoder"
chmod 0755 "$root/usr/local/bin/edgecoder"

# install_name_tool invalidated the signatures, and arm64 macOS runs no unsigned code: sign
# with the Developer ID when given, ad hoc otherwise.
for f in "$root$libdir"/* "$root/usr/local/bin/edgecoder"; do
  [ -e "$f" ] || continue
  if [ -n "${APP_SIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --options runtime --sign "$APP_SIGN_IDENTITY" "$f"
  else
    codesign --force --sign - "$f"
  fi
done

install -m 0644 "$here/io.edgecoder.runtime.plist" "$root/Library/LaunchDaemons/"
# The Linux settings file with the macOS data directory.
sed 's|^EDGECODER_DATA_DIR=/var/lib/edgecoder$|EDGECODER_DATA_DIR=/usr/local/var/edgecoder|' \
  "$packaging/debian/edgecoder.env" >"$root/usr/local/share/edgecoder/edgecoder.env.example"
install -m 0755 "$here/uninstall.sh" "$root/usr/local/share/edgecoder/uninstall.sh"

component="$work/edgecoder-component.pkg"
pkgbuild --root "$root" --identifier io.edgecoder.runtime --version "$version" \
  --scripts "$here/scripts" --install-location / --ownership recommended "$component"
cat >"$work/distribution.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
  <title>EdgeCoder $version</title>
  <options customize="never" require-scripts="true" hostArchitectures="arm64,x86_64"/>
  <domains enable_localSystem="true"/>
  <choices-outline><line choice="default"/></choices-outline>
  <choice id="default" title="EdgeCoder"><pkg-ref id="io.edgecoder.runtime"/></choice>
  <pkg-ref id="io.edgecoder.runtime" version="$version">edgecoder-component.pkg</pkg-ref>
</installer-gui-script>
XML
archs=$(lipo -archs "$root/usr/local/bin/edgecoder")
case " $archs " in
  *" arm64 "*" x86_64 "*|*" x86_64 "*" arm64 "*) flavour=universal ;;
  *) flavour=$(echo $archs | tr ' ' '-') ;;
esac
pkg="$out/EdgeCoder-$version-macos-$flavour.pkg"
productbuild --distribution "$work/distribution.xml" --package-path "$work" "$work/unsigned.pkg"
if [ -n "${PKG_SIGN_IDENTITY:-}" ]; then
  productsign --sign "$PKG_SIGN_IDENTITY" "$work/unsigned.pkg" "$pkg"
else
  mv "$work/unsigned.pkg" "$pkg"
fi
echo "$pkg"
