#!/bin/sh
# ucarp --upscript: this machine became MASTER for the virtual IP.
# ucarp runs it as:  vip-up.sh <interface> <virtual-ip> [<xparam>]   (we pass the prefix length as --xparam)
#
# ucarp waits for this script and sends no adverts meanwhile, so the promotion runs in the background:
# its result goes to mfs-jobs' state file, Prometheus textfile, and the log below — never to /dev/null.
# (Running `mfs-jobs run promote` in the foreground works too: promote returns as soon as its master serves
# and leaves the clients-back watch to a detached process; only the promotion itself then holds ucarp.)
# promote itself fences the old master, checks the VIP is still here before and after acting, and is a
# no-op when this machine's mfsmaster already serves (e.g. ucarp restarted on the running master).
#
# Environment (optional): MFS_JOBS (the mfs-jobs executable), MFS_JOBS_CONFIG (its config file),
# MFS_JOBS_HOOK_LOG (where the hook's output goes).
set -u
IFACE="$1"
VIP="$2"
PREFIX="${3:-32}"
MFS_JOBS="${MFS_JOBS:-mfs-jobs}"
LOG="${MFS_JOBS_HOOK_LOG:-/var/log/mfs-jobs-failover.log}"

echo "$(date -u +%FT%TZ) vip-up: $VIP/$PREFIX on $IFACE" >>"$LOG"
if ! ip -o -4 addr show dev "$IFACE" | grep -q " inet $VIP/"; then
  if ! ip addr add "$VIP/$PREFIX" dev "$IFACE" 2>>"$LOG"; then
    echo "$(date -u +%FT%TZ) vip-up: cannot add $VIP/$PREFIX to $IFACE; not promoting" >>"$LOG"
    exit 1
  fi
fi
setsid "$MFS_JOBS" run promote >>"$LOG" 2>&1 </dev/null &
exit 0
