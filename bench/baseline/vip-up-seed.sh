#!/bin/sh
# The seed recipe's ucarp up-script, as operators write it: take the VIP, copy the metalogger's newest
# image and changelogs into the standby's DATA_PATH, `mfsmaster -a` (restore, then serve). No fencing,
# no checks. Promote's baseline in the VIP failover test and `npm run bench` (the metalogger's DATA_PATH
# is reachable as a directory there; on real machines it is an scp).
# ucarp runs it as: vip-up-seed.sh <interface> <virtual-ip> [<prefix length>]
# Environment: SEED_ML_DATA_PATH, SEED_DATA_PATH, SEED_MFSMASTER_CFG, SEED_MFSMASTER (default mfsmaster).
set -u
ip addr add "$2/${3:-32}" dev "$1" 2>/dev/null
cp "$SEED_ML_DATA_PATH"/metadata_ml.mfs.back "$SEED_ML_DATA_PATH"/changelog_ml.*.mfs "$SEED_DATA_PATH"/
"${SEED_MFSMASTER:-mfsmaster}" -c "$SEED_MFSMASTER_CFG" -a start
