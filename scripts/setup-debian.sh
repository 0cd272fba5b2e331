#!/usr/bin/env bash
# Install what mfs-jobs and its tests need on a fresh Debian (bookworm) machine, as root:
# MooseFS from Debian's packages, OpenSSH, ucarp/keepalived, FUSE, iproute2; then the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(moosefs-master moosefs-metalogger moosefs-chunkserver moosefs-client moosefs-cli
          openssh-server openssh-client ucarp keepalived fuse3 iproute2 procps util-linux
          time faketime)  # GNU time: peak RSS in npm run bench; faketime: hourly rotations in prune tests
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# sshd's privilege-separation directory (the lab starts its own sshd on a loopback port).
mkdir -p /run/sshd
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: FUSE mounts (mfsmount) cannot work here" >&2; exit 1; }

npm ci --no-audit --no-fund
npm run build
echo "setup: done"
