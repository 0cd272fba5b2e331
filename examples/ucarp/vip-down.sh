#!/bin/sh
# ucarp --downscript: this machine is BACKUP (or ucarp is shutting down with --shutdown).
# ucarp runs it as:  vip-down.sh <interface> <virtual-ip> [<xparam>]
#
# The VIP goes first, then `mfs-jobs run demote` stops the local mfsmaster cleanly and keeps its files.
# demote waits for a promotion still running (same lock) and does nothing while the VIP is held here.
set -u
IFACE="$1"
VIP="$2"
PREFIX="${3:-32}"
MFS_JOBS="${MFS_JOBS:-mfs-jobs}"
LOG="${MFS_JOBS_HOOK_LOG:-/var/log/mfs-jobs-failover.log}"

echo "$(date -u +%FT%TZ) vip-down: $VIP/$PREFIX on $IFACE" >>"$LOG"
if ip -o -4 addr show dev "$IFACE" | grep -q " inet $VIP/"; then
  ip addr del "$VIP/$PREFIX" dev "$IFACE" 2>>"$LOG"
fi
"$MFS_JOBS" run demote >>"$LOG" 2>&1 </dev/null
exit 0
