#!/usr/bin/env bash
# Builds the node image (default tag tributary:dev; IMAGE=name:tag overrides) on a Docker engine
# without registry access: FROM scratch, holding the release binary, the dynamic loader and the
# shared libraries the binary links (libstdc++ for RocksDB, libgcc_s, libm, libc), at the paths
# it expects. Nothing is pulled. BINARY=path packs that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-tributary:dev}"
# BINARY=path packs an already built binary (tests do); otherwise build the release binary.
if [ -n "${BINARY:-}" ]; then
  binary="$BINARY"
else
  ./x build
  binary="${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/tributary/target}/release/tributary"
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/data" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp "$binary" "$rootfs/usr/local/bin/tributary"
# `ldd` lines: "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" and the loader
# "/lib64/ld-linux-x86-64.so.2 (0x...)".
libraries="$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')"
for library in $libraries; do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done
cp cluster/Dockerfile "$context/Dockerfile"
docker build --quiet --tag "$image" "$context" >/dev/null
echo "built $image ($(docker image inspect --format '{{.Size}}' "$image") bytes): $(echo $libraries | wc -w) libraries + tributary"
