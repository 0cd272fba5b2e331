#!/bin/sh
# The default store's work with standard tools: copy the image (scp, or cp for a local source), compress
# it (zstd -3, the store's default level), record its sha256, make both durable (fsync).
# Usage: backup-zstd.sh DEST SOURCE [scp options...]   (SOURCE without "host:" is copied with cp)
set -e
dest=$1 src=$2
shift 2
case $src in
  *:*) scp -q "$@" "$src" "$dest" ;;
  *) cp "$src" "$dest" ;;
esac
zstd -q -3 --rm "$dest" -o "$dest.zst"
sha256sum "$dest.zst" > "$dest.zst.sha256"
sync "$dest.zst" "$dest.zst.sha256"
