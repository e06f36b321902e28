#!/bin/sh
# Builds a Debian bookworm minbase root image (ext4) for tools/debian/compare.ts.
# Needs root and network access to deb.debian.org. Not run in CI.
# Usage: tools/debian/build-image.sh [OUTDIR]   (default: /tmp/debian-bookworm)
set -eu
OUT=${1:-/tmp/debian-bookworm}
ROOT="$OUT/root"
IMG="$OUT/rootfs.ext4"
command -v debootstrap >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
mkdir -p "$OUT"
if [ ! -x "$ROOT/usr/bin/python3" ]; then
  rm -rf "$ROOT"
  debootstrap --variant=minbase --include=python3-minimal,coreutils,mawk,perl-base \
    bookworm "$ROOT" http://deb.debian.org/debian
fi
# The init script the guest runs (compare.ts passes init=/cmp-init).
install -m 0755 "$(dirname "$0")/cmp-init.sh" "$ROOT/cmp-init"
install -m 0755 "$(dirname "$0")/commands.sh" "$ROOT/cmp-commands"
rm -f "$IMG"
# Size: used space plus headroom.
SIZE_MB=$(( $(du -sm "$ROOT" | cut -f1) + 256 ))
mkfs.ext4 -q -F -L debian -d "$ROOT" "$IMG" "${SIZE_MB}M"
echo "$IMG"
