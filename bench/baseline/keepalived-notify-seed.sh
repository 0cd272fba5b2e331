#!/bin/sh
# The seed recipe's up-script (vip-up-seed.sh) as keepalived's notify script, as an operator moving the
# recipe to keepalived writes it: keepalived has added and announced the VIP already, so `master` only
# copies the metalogger's newest image and changelogs into the standby's DATA_PATH and runs `mfsmaster -a`
# (restore, then serve) — no fencing, no checks, in the foreground of the notify script (keepalived does not
# wait for it). `backup` and `fault` do nothing (the recipe has no down step). The keepalived baseline of
# `npm run bench -- --cases failover-keepalived`.
# keepalived runs it as: keepalived-notify-seed.sh master|backup|fault
# Environment: SEED_ML_DATA_PATH, SEED_DATA_PATH, SEED_MFSMASTER_CFG, SEED_MFSMASTER (default mfsmaster).
set -u
[ "${1:-}" = master ] || exit 0
cp "$SEED_ML_DATA_PATH"/metadata_ml.mfs.back "$SEED_ML_DATA_PATH"/changelog_ml.*.mfs "$SEED_DATA_PATH"/
"${SEED_MFSMASTER:-mfsmaster}" -c "$SEED_MFSMASTER_CFG" -a start
