#!/bin/sh
# A restore from a default (zstd) store with standard tools: decompress the snapshot's image and changelogs
# into the empty DATA_PATH, then `mfsmaster -a` (it applies the changelogs and serves).
# Usage: restore-zstd.sh SNAPSHOT_DIR DATA_PATH MFSMASTER_CFG
set -e
snap=$1 dp=$2 cfg=$3
for f in "$snap"/*.zst; do
  zstd -q -d -c "$f" > "$dp/$(basename "$f" .zst)"
done
exec mfsmaster -c "$cfg" -a start
