#!/bin/sh
# The seed recipe's ucarp up-script, as operators write it today: copy the metalogger's newest image
# and its changelogs to the standby over ssh, then start the master with -a (restore, then serve).
# Usage: promote.sh USER@HOST ML_DATA_PATH STANDBY_DATA_PATH MFSMASTER_CFG [scp options...]
set -e
src=$1 ml=$2 data=$3 cfg=$4
shift 4
scp -q "$@" "$src:$ml/metadata_ml.mfs.back" "$src:$ml/changelog_ml.*.mfs" "$data/"
mfsmaster -c "$cfg" -a start
