#!/usr/bin/env bash
# Build MooseFS generations from their upstream source tarballs into cached prefixes, for the labs that
# test mfs-jobs against generations Debian does not ship (1.5.12, 1.6.4, 1.6.27, 4.59.2, ...).
#
#   scripts/build-moosefs.sh VERSION [VERSION...]     e.g. 1.6.27 4.59.2, or `all` for every tarball found
#
# Sources: $MFS_JOBS_MOOSEFS_SRC/moosefs-VERSION.tar.gz, by default ../shared/moosefs-src next to the repo.
# Result:  ${MFS_JOBS_MOOSEFS_PREFIX:-/opt/mfs-jobs/moosefs}/VERSION/{bin,sbin,etc,var,share}, with
#          PREFIX/.built holding the tarball's sha256: a rerun with the same tarball does nothing.
# Everything is configured for PREFIX (config examples in PREFIX/etc, the default DATA_PATH PREFIX/var/mfs,
# no systemd units, no /sbin/mount.*) and installed with DESTDIR into a staging copy that is renamed into
# place at the end, so a half-built prefix never looks complete and nothing lands in Debian's /usr, /etc, /var.
set -euo pipefail

me=build-moosefs
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
src_dir=$(realpath -m -- "${MFS_JOBS_MOOSEFS_SRC:-$repo/../shared/moosefs-src}")
prefix_root=$(realpath -m -- "${MFS_JOBS_MOOSEFS_PREFIX:-/opt/mfs-jobs/moosefs}")
jobs=2

usage() {
  echo "usage: $0 VERSION [VERSION...] | all   (tarballs: $src_dir/moosefs-VERSION.tar.gz)" >&2
  exit 2
}
[ "$#" -gt 0 ] || usage

# ---- which versions ---------------------------------------------------------------------------------
versions=()
add_version() {
  local v=$1 x
  for x in "${versions[@]+"${versions[@]}"}"; do [ "$x" = "$v" ] && return 0; done
  versions+=("$v")
}
for arg in "$@"; do
  case $arg in
    -h|--help) usage ;;
    all)
      found=0
      while IFS= read -r t; do
        v=${t##*/moosefs-}; v=${v%.tar.gz}
        add_version "$v"; found=1
      done < <(find "$src_dir" -maxdepth 1 -name 'moosefs-*.tar.gz' 2>/dev/null | sort -V)
      [ "$found" = 1 ] || { echo "$me: all: no source tarballs (moosefs-*.tar.gz) in $src_dir" >&2; exit 1; }
      ;;
    *)
      [[ $arg =~ ^[0-9]+(\.[0-9]+)*$ ]] || { echo "$me: $arg: not a version (expected e.g. 1.6.27, or all)" >&2; exit 2; }
      add_version "$arg"
      ;;
  esac
done

# Every tarball must be there before anything is built.
missing=0
for v in "${versions[@]}"; do
  t="$src_dir/moosefs-$v.tar.gz"
  if [ ! -f "$t" ]; then
    echo "$me: $v: no source tarball at $t (get it from MooseFS's public git history / release tags)" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1

# ---- temp dir, staging, cleanup -----------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX")
staging=
old=
cleanup() {
  local rc=$?
  [ -z "$staging" ] || rm -rf -- "$staging"
  [ -z "$old" ] || rm -rf -- "$old"
  rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log=
step() {  # step DESCRIPTION CMD...: run CMD with its output in the log; on failure show the log's end
  local what=$1; shift
  echo "== $what: $*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    echo "$me: $cur: $what failed; last 30 lines of the build log:" >&2
    tail -n 30 "$log" | sed "s/^/$me: $cur: | /" >&2
    exit 1
  fi
}

configure_supports() { ./configure --help 2>/dev/null | grep -q -- "$1"; }

# build VERSION TARBALL PREFIX DESTDIR
build() {
  local v=$1 tarball=$2 prefix=$3 dest=$4 top
  local -a conf=(--prefix="$prefix" --sysconfdir="$prefix/etc" --localstatedir="$prefix/var"
                 --with-default-user=root --with-default-group=root)
  mkdir -p "$work/$v/src"
  step "unpack $tarball" tar -xzf "$tarball" -C "$work/$v/src"
  top="$work/$v/src"
  if [ ! -f "$top/configure.ac" ]; then  # a tarball with one top directory (git archive --prefix=...)
    top=$(find "$work/$v/src" -mindepth 2 -maxdepth 2 -name configure.ac -printf '%h\n' | head -n 1)
    [ -n "$top" ] || { echo "$me: $v: no configure.ac in $tarball" >&2; exit 1; }
  fi
  cd "$top"
  # configure puts RUN_PATH (1.x: the default LOCK_FILE, RUN_PATH/mfsmaster.lock; make install creates it)
  # in the system's /var/run/mfs for prefixes under /usr or /opt, shared by every generation: keep it in
  # the prefix like everything else.
  if grep -q 'RUN_PATH="\{0,1\}/var/run/mfs' configure.ac; then
    step "RUN_PATH into the prefix" sed -i 's|RUN_PATH="\{0,1\}/var/run/mfs"\{0,1\}|RUN_PATH="${prefix}/var/run/mfs"|' configure.ac
  fi
  case $v in
    1.*)
      # No configure in these trees. 1.5.x has no --disable-mfscgi (no CGI at all). Its mfsmount does not
      # compile (mfsmount/csdb.[ch] are missing from the tree), so it is left out. Note that a 1.5.12 master
      # refuses 1.6.4's mfsmount (CUTOMA_FUSE_REGISTER - wrong size); adding 1.6.4's csdb.[ch] makes it build.
      step autogen sh autogen.sh
      if configure_supports --disable-mfscgi; then conf+=(--disable-mfscgi --disable-mfscgiserv); fi
      case $v in 1.5.*) conf+=(--disable-mfsmount) ;; esac
      step configure ./configure "${conf[@]}"
      # -fcommon: these sources define globals in headers, which GCC >= 10 rejects by default.
      step make make -j"$jobs" CFLAGS="-O2 -fcommon"
      ;;
    *)
      # The tree's own configure is stale against its timestamps (make would rerun aclocal): regenerate.
      step autoreconf autoreconf -fi
      conf+=(--disable-mfsgui --disable-mfsnetdump --disable-mfsbdev
             --with-systemdsystemunitdir=no --with-rootsbindir="$prefix/sbin")
      # mfscli is a python3 script whose shebang configure takes from the python it finds: pin Debian's,
      # not whatever (pyenv, venv) comes first on PATH.
      if [ -x /usr/bin/python3 ]; then conf+=(PYTHON=/usr/bin/python3); fi
      step configure ./configure "${conf[@]}"
      step make make -j"$jobs"
      ;;
  esac
  step "make install" make install DESTDIR="$dest"
  # Nothing may have been installed outside the prefix (it would have gone to /etc, /var, /sbin, /lib...).
  local stray
  stray=$(cd "$dest" && find . -mindepth 1 \( -path ".$prefix" -prune \) -o -print |
          while IFS= read -r p; do case "$prefix/" in "${p#.}/"*) ;; *) echo "${p#.}" ;; esac; done)
  if [ -n "$stray" ]; then
    echo "$me: $v: make install wrote outside $prefix:" >&2
    echo "$stray" | sed "s/^/$me: $v:   /" >&2
    exit 1
  fi
  [ -d "$dest$prefix" ] || { echo "$me: $v: make install put nothing in $prefix" >&2; exit 1; }
}

mkdir -p "$prefix_root"
ready=()
for v in "${versions[@]}"; do
  cur=$v
  tarball="$src_dir/moosefs-$v.tar.gz"
  prefix="$prefix_root/$v"
  sha=$(sha256sum "$tarball" | cut -d' ' -f1)
  # One build per prefix at a time (parallel CI jobs on one machine); the lock is released at exit.
  exec {lockfd}>"$prefix_root/.$v.lock"
  flock "$lockfd"
  if [ -f "$prefix/.built" ] && [ "$(head -n 1 "$prefix/.built")" = "$sha" ]; then
    ready+=("$me: $v ready in $prefix (cached)")
    exec {lockfd}>&-
    continue
  fi
  log="$work/$v/build.log"
  mkdir -p "$work/$v"
  : >"$log"
  echo "$me: $v: building from $tarball (log: $log)" >&2
  start=$SECONDS
  (build "$v" "$tarball" "$prefix" "$work/$v/dest")
  staging="$prefix.tmp.$$"
  rm -rf -- "$staging"
  cp -a -- "$work/$v/dest$prefix" "$staging"
  echo "$sha" >"$staging/.built"
  if [ -e "$prefix" ]; then  # an older build (other tarball) or a leftover without .built
    old="$prefix.old.$$"
    mv -- "$prefix" "$old"
  fi
  mv -- "$staging" "$prefix"
  staging=
  [ -z "$old" ] || { rm -rf -- "$old"; old=; }
  rm -rf -- "$work/$v"
  exec {lockfd}>&-
  echo "$me: $v: built in $((SECONDS - start)) s" >&2
  ready+=("$me: $v ready in $prefix")
done
printf '%s\n' "${ready[@]}"
