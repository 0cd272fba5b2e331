#!/usr/bin/env bash
# Install what mfs-jobs and its tests need on a fresh Debian (bookworm) machine, as root:
# MooseFS from Debian's packages, OpenSSH, ucarp/keepalived, FUSE, iproute2, Ceph RGW (S3 tests); then the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(moosefs-master moosefs-metalogger moosefs-chunkserver moosefs-client moosefs-cli
          openssh-server openssh-client ucarp keepalived fuse3 iproute2 procps util-linux
          iputils-arping  # promote's fence: ARP tells a dead master's host within 150 ms
          zstd  # the snapshot store's compression (through a pipe; BENCHMARKS.md section 7)
          iptables  # tests: a port that drops SYNs, VIP adverts cut between A and B
          nftables  # standby.holdClients (SYNs to the VIP held until the new master listens); tests: advert drops
          etcd-server etcd-client  # quorum.etcd: the failover lease (tests run members in network namespaces)
          time faketime  # GNU time: peak RSS in npm run bench; faketime: hourly rotations in prune tests
          # scripts/build-moosefs.sh (MooseFS 1.5/1.6/4.x from moosefs-src): compilers and autotools,
          # zlib/libpcap, FUSE 3 (4.x mfsmount) and FUSE 2 headers (1.6 mfsmount; libfuse-dev needs only
          # libfuse2, not the 'fuse' package, which conflicts with fuse3), python3 (4.x mfscli).
          build-essential autoconf automake libtool pkg-config zlib1g-dev libpcap-dev
          libfuse3-dev libfuse-dev python3
          # test/monitoring/: the real readers of mfs-jobs' output — node_exporter's textfile collector,
          # promtool (package prometheus), nagios4 -v (nagios4-core: the daemon without the web UI's Apache)
          # and check_file_age (monitoring-plugins-basic, the backup freshness service)
          prometheus-node-exporter prometheus nagios4-core monitoring-plugins-basic
          # test/install/: the .deb is built with dpkg-deb, its unit checked with systemd-analyze verify,
          # its man page rendered by man
          dpkg systemd man-db git)
# Install those of the named packages that are not installed yet (extra apt-get flags before "--").
install_missing() {
  local flags=() missing=() p
  while [ "$1" != "--" ]; do flags+=("$1"); shift; done
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${flags[@]}" "${missing[@]}" >/dev/null
}
install_missing -- "${packages[@]}"
# test/store/copies.test.ts: a real S3 server, Ceph RADOS Gateway on one memstore OSD (test/lab/s3.ts).
# Without recommends (no ceph-mgr, no dashboards): 57 packages. A missing one fails here, never skips a test.
ceph_packages=(radosgw ceph-mon ceph-osd)
install_missing --no-install-recommends -- "${ceph_packages[@]}"
for bin in radosgw radosgw-admin ceph-mon ceph-osd; do
  command -v "$bin" >/dev/null || { echo "setup: $bin is missing after installing ${ceph_packages[*]}: the S3 copy tests cannot run" >&2; exit 1; }
done
# sshd's privilege-separation directory (the lab starts its own sshd on a loopback port).
mkdir -p /run/sshd
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: FUSE mounts (mfsmount) cannot work here" >&2; exit 1; }

# The MooseFS generations Debian does not ship (1.5.12, 1.6.4, 1.6.27, 4.59.2), built from their upstream
# source tarballs into /opt/mfs-jobs/moosefs (cached: a rerun is instant) for the generation tests.
src=$(realpath -m -- "${MFS_JOBS_MOOSEFS_SRC:-../shared/moosefs-src}")
if compgen -G "$src/moosefs-*.tar.gz" >/dev/null; then
  bash scripts/build-moosefs.sh all
elif [ -n "${CI:-}" ]; then
  echo "setup: no MooseFS source tarballs in $src: the generation tests cannot run (set MFS_JOBS_MOOSEFS_SRC)" >&2
  exit 1
else
  echo "setup: MooseFS 1.5/1.6/4.x not built: no source tarballs in $src (set MFS_JOBS_MOOSEFS_SRC); the generation tests will fail"
fi

npm ci --no-audit --no-fund
npm run build
echo "setup: done"
