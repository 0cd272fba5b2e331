#!/bin/sh
# A careful operator's cron line: scp the image, record its sha256, make both durable (fsync) —
# the integrity and durability work mfs-jobs backup also does, with standard tools.
# Usage: backup.sh DEST USER@HOST:IMAGE [scp options...]
set -e
dest=$1 remote=$2
shift 2
scp -q "$@" "$remote" "$dest"
sha256sum "$dest" > "$dest.sha256"
sync "$dest" "$dest.sha256"
