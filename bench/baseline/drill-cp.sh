#!/bin/sh
# A drill's restore with standard tools (issue 28's baseline for drill): copy the metalogger's image and
# changelogs into the empty DATA_PATH, then `mfsmaster -a` (it applies the changelogs and serves).
# Usage: drill-cp.sh SOURCE_DATA_PATH DATA_PATH MFSMASTER_CFG FILE...
set -e
src=$1 dp=$2 cfg=$3
shift 3
for f in "$@"; do
  cp "$src/$f" "$dp/$f"
done
exec mfsmaster -c "$cfg" -a start
