#!/bin/sh
# keepalived notify script for a MooseFS master failover with mfs-jobs (keepalived.conf beside this file):
#   notify_master "/etc/mfs-jobs/mfs-jobs-notify.sh master"
#   notify_backup "/etc/mfs-jobs/mfs-jobs-notify.sh backup"
#   notify_fault  "/etc/mfs-jobs/mfs-jobs-notify.sh fault"
# Install it as root:root, mode 0755, in a directory only root can write (/etc/mfs-jobs): with
# enable_script_security keepalived disables a script that another user could change (the script or a
# directory above it), and `mfs-jobs run check-standby` says so first (list it in standby.hookScripts).
#
# keepalived adds the VIP and sends its gratuitous ARPs before it runs notify_master, and does not wait for
# the script: nothing here can delay the VIP (unlike ucarp's up-script). The job still goes into a session
# of its own (setsid): keepalived runs each notify script in a process group of its own, which it may kill
# when it stops, and sends the script itself SIGTERM when it dies (PR_SET_PDEATHSIG); a promotion or a clean mfsmaster stop
# must not be cut off halfway because keepalived was restarted meanwhile. keepalived gives no ordering of
# notify scripts when states change quickly: promote and demote share one lock, promote checks the VIP is
# held before and after acting and fences the old master, demote does nothing while the VIP is held here.
#
# fault: also what keepalived runs when promote refused (the old master still serves) and put this machine
# into FAULT through the track file (keepalived.conf, standby.keepalivedTrackFile): the demote it starts
# finds no master to stop. mfs-jobs releases that FAULT itself (docs/failover.md), not this script.
#
# Environment (optional; keepalived passes its own on): MFS_JOBS (the mfs-jobs executable),
# MFS_JOBS_CONFIG (its config file), MFS_JOBS_HOOK_LOG (where the jobs' output goes: keepalived sends a
# notify script's own output to /dev/null), MFS_JOBS_RUN_DIR (root's run directory, for the marker below).
set -u
MFS_JOBS="${MFS_JOBS:-/usr/local/bin/mfs-jobs}"
LOG="${MFS_JOBS_HOOK_LOG:-/var/log/mfs-jobs-failover.log}"
# keepalived runs this script from its VRRP process: $PPID names the keepalived run. A marker per run says
# it has been MASTER. keepalived starts every instance in BACKUP (or FAULT) and notifies that too: a
# keepalived (re)started beside a serving mfsmaster must not stop it (ucarp's --neutral, for keepalived).
RUN_DIR="${MFS_JOBS_RUN_DIR:-/run/mfs-jobs}"
MARK="$RUN_DIR/keepalived-master.$PPID"
now() { date -u +%FT%TZ; }

case "${1:-}" in
  master)
    job=promote
    mkdir -p -m 0700 "$RUN_DIR" && rm -f "$RUN_DIR"/keepalived-master.* && : >"$MARK"
    ;;
  backup | fault)
    job=demote
    if [ ! -e "$MARK" ]; then
      echo "$(now) keepalived notify: $1 before this keepalived (pid $PPID) was MASTER: not demoting" >>"$LOG"
      exit 0
    fi
    rm -f "$MARK"
    ;;
  *)
    echo "$(now) keepalived notify: unknown state '${1:-}' (want master, backup or fault)" >>"$LOG"
    exit 1
    ;;
esac
echo "$(now) keepalived notify: $1, running $job" >>"$LOG"
setsid "$MFS_JOBS" run "$job" >>"$LOG" 2>&1 </dev/null &
exit 0
