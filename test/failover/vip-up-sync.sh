#!/bin/sh
# The seed's hook form with mfs-jobs in it, as an operator moving from the seed's recipe writes it: ucarp's
# up-script takes the VIP and runs `mfs-jobs run promote` in the foreground, waiting for it. ucarp runs its
# up-script synchronously and announces the VIP (gratuitous ARP, adverts) only once it returns, so promote
# must return as soon as its master serves (the clients-back watch goes on in a detached process).
# ucarp runs it as: vip-up-sync.sh <interface> <virtual-ip> [<prefix length>]
set -u
IFACE="$1"
VIP="$2"
PREFIX="${3:-32}"
LOG="${MFS_JOBS_HOOK_LOG:-/var/log/mfs-jobs-failover.log}"
echo "vip-up-sync start $(date +%s.%N)" >>"$LOG"
ip addr add "$VIP/$PREFIX" dev "$IFACE" 2>>"$LOG"
"${MFS_JOBS:-mfs-jobs}" run promote >>"$LOG" 2>&1 </dev/null
rc=$?
echo "vip-up-sync end $(date +%s.%N) rc $rc" >>"$LOG"
exit 0
