#!/usr/bin/env bash
# npm run package:deb [-- OUTDIR]: build OUTDIR/mfs-jobs_<version>_all.deb (default build/) with dpkg-deb.
# The program goes to /usr/lib/mfs-jobs (what `npm pack` ships: the launcher and dist/, plus the production
# node_modules from package-lock.json), /usr/bin/mfs-jobs links to its launcher; /etc/mfs-jobs/config.yaml
# and /etc/cron.d/mfs-jobs (every line commented out) are conffiles; the systemd unit runs /usr/bin/mfs-jobs
# (installed, not enabled); the ucarp/keepalived hooks and the monitoring examples go to
# /usr/share/mfs-jobs/examples; the man page is mfs-jobs(1). No maintainer scripts: installing starts nothing,
# and purging leaves /var/lib/mfs-jobs (state and, by default, the snapshot store) alone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
out=$(realpath -m -- "${1:-$repo/build}")
version=$(node -p "require(process.argv[1]).version" "$repo/package.json")
deb="$out/mfs-jobs_${version}_all.deb"
work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-jobs-deb.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
command -v dpkg-deb >/dev/null || { echo "package-deb: dpkg-deb not found (Debian's dpkg package)" >&2; exit 1; }
# 1. What a clean source tree holds, packed by npm: prepack builds its dist/, never the working tree's dist/
#    that tests may be running from. In a clone: its files, tracked and untracked, not ignored. In a source
#    tarball without .git (GitHub's "Download source"): the tree without what .gitignore names.
mkdir "$work/src"
if command -v git >/dev/null && [ "$(git -C "$repo" rev-parse --show-toplevel 2>/dev/null)" = "$repo" ]; then
  git -C "$repo" ls-files -z -co --exclude-standard \
    | tar -C "$repo" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$work/src" -xf -
else
  tar -C "$repo" --exclude=./.git --exclude=./node_modules --exclude=./dist --exclude=./build --exclude=./lab-run \
    --exclude=./bench/out --exclude='./.*dist' --exclude='*.log' -cf - . | tar -C "$work/src" -xf -
fi
if [ -d "$repo/node_modules" ]; then ln -s "$(realpath "$repo/node_modules")" "$work/src/node_modules"
else (cd "$work/src" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null); fi
tgz=$(cd "$work/src" && npm pack --silent --pack-destination "$work" | tail -n 1)

# 2. The tree the package installs.
root="$work/root"
lib="$root/usr/lib/mfs-jobs"
share="$root/usr/share/mfs-jobs"
mkdir -p "$lib" "$root/usr/bin" "$root/etc/mfs-jobs" "$root/etc/cron.d" "$root/lib/systemd/system" \
  "$share" "$root/usr/share/man/man1" "$root/usr/share/doc/mfs-jobs" "$root/DEBIAN"
tar -xzf "$work/$tgz" -C "$lib" --strip-components=1 --no-same-owner
cp "$repo/package-lock.json" "$lib/"
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >/dev/null)
rm -f "$lib/node_modules/.package-lock.json"
# Type declarations only, never loaded at run time (protobufjs, under etcd3, lists @types/node as a dependency).
rm -rf "$lib/node_modules/@types"
# Architecture all: nothing compiled may be inside (ssh2's optional cpu-features is skipped by --ignore-scripts).
if native=$(find "$lib/node_modules" -name '*.node' -print -quit) && [ -n "$native" ]; then
  echo "package-deb: native module $native in node_modules: the package cannot be Architecture: all" >&2; exit 1
fi
ln -s ../lib/mfs-jobs/bin/mfs-jobs "$root/usr/bin/mfs-jobs"

cp "$repo/examples/config.yaml" "$root/etc/mfs-jobs/config.yaml"
{
  echo "# /etc/cron.d/mfs-jobs — from mfs-jobs' crontab.example, every job commented out: enable the jobs you want"
  echo "# here, or run \`systemctl enable --now mfs-jobs\` (the daemon schedules them), not both."
  sed -e '1d' -e 's#^PATH=.*#PATH=/usr/bin:/bin:/usr/sbin:/sbin#' -E -e 's/^([0-9*@])/# \1/' "$repo/crontab.example"
} >"$root/etc/cron.d/mfs-jobs"
sed -e '1s#.*#\# /lib/systemd/system/mfs-jobs.service — every scheduled job under `mfs-jobs daemon` (node-cron).#' \
  -e 's#/usr/local/bin/mfs-jobs#/usr/bin/mfs-jobs#g' "$repo/examples/systemd/mfs-jobs.service" >"$root/lib/systemd/system/mfs-jobs.service"
grep -q '^ExecStart=/usr/bin/mfs-jobs daemon$' "$root/lib/systemd/system/mfs-jobs.service" \
  || { echo "package-deb: examples/systemd/mfs-jobs.service: its ExecStart did not become /usr/bin/mfs-jobs daemon" >&2; exit 1; }

mkdir -p "$share/examples" && cp -r "$repo/examples/." "$share/examples/"
cp "$repo/crontab.example" "$share/examples/"
# The examples as this package installs it: mfs-jobs is /usr/bin/mfs-jobs (the clone's say /usr/local/bin).
grep -rlZ '/usr/local/bin/mfs-jobs' "$share/examples" | xargs -0 -r sed -i 's#/usr/local/bin/mfs-jobs#/usr/bin/mfs-jobs#g'
gzip -9n <"$repo/packaging/mfs-jobs.1" >"$root/usr/share/man/man1/mfs-jobs.1.gz"
cp "$repo/README.md" "$root/usr/share/doc/mfs-jobs/README.md"
# The README links its reference pages as docs/…: they travel beside it.
cp -r "$repo/docs" "$root/usr/share/doc/mfs-jobs/docs"
cp "$repo/packaging/copyright" "$root/usr/share/doc/mfs-jobs/copyright"

# 3. Ownership and modes: root's, 0755 directories and programs, 0644 files, the config 0640 (it names keys).
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$lib/bin/mfs-jobs" "$share/examples/ucarp/"*.sh "$share/examples/keepalived/"*.sh
chmod 0640 "$root/etc/mfs-jobs/config.yaml"

cat >"$root/DEBIAN/conffiles" <<EOF
/etc/mfs-jobs/config.yaml
/etc/cron.d/mfs-jobs
EOF
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# No invented addresses. Maintainer (Debian requires one): whoever builds the package, as Debian's own
# tools read them (DEBFULLNAME, DEBEMAIL), else package.json's author, else the building user at this host.
# Homepage: only when package.json names one.
author=$(node -e '
  const a = require(process.argv[1]).author;
  if (typeof a === "string") console.log(a.replace(/\s*\(.*\)\s*$/, ""));
  else if (a && a.name) console.log(a.email ? `${a.name} <${a.email}>` : a.name);' "$repo/package.json")
if [ -n "${DEBEMAIL:-}" ]; then maintainer="${DEBFULLNAME:-$(id -un)} <$DEBEMAIL>"
elif [[ "$author" == *"<"*"@"*">"* ]]; then maintainer=$author
else maintainer="Local build by $(id -un) <$(id -un)@$(hostname)>"; fi
homepage=$(node -p 'require(process.argv[1]).homepage ?? ""' "$repo/package.json")
cat >"$root/DEBIAN/control" <<EOF
Package: mfs-jobs
Version: $version
Architecture: all
Section: admin
Priority: optional
Maintainer: $maintainer
Installed-Size: $size
Depends: nodejs (>= 20), zstd
Recommends: moosefs-cli, moosefs-master, openssh-client, iproute2, iputils-arping, nftables
Suggests: ucarp | keepalived, moosefs-metalogger, prometheus-node-exporter
${homepage:+Homepage: $homepage
}Description: backup, verification, pruning, failover and restore drills for MooseFS metadata
 mfs-jobs keeps a MooseFS cluster's master metadata safe and its standby master
 ready: discrete, idempotent jobs (check-master, backup, verify, prune,
 promote/demote, drill) that verify everything they copy and report as Nagios
 plugins (exit codes, perfdata), JSON and Prometheus textfiles.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/"*

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
