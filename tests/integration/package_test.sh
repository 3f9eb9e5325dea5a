#!/bin/bash
# ctest `package`: builds the .deb from a build tree with cpack (into a temp
# dir), installs it with dpkg, checks what it installed, purges it and checks
# it is gone. Cleans up (purge, temp dir) on failure too.
#
#   bash tests/integration/package_test.sh BUILD_DIR
#
# Needs root (dpkg -i), cpack (cmake) and dpkg-shlibdeps (dpkg-dev):
# packaging/install-deps.sh installs them. Exits 77 (ctest: skipped) when not
# root, or when a sluice package or /etc/sluice/sluice.yaml that this test did
# not install is already there: it would replace and then purge them.
set -euo pipefail

build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
# Left while the package is installed by this test: a run killed before its
# purge (ctest timeout) is recognised and cleaned up by the next one.
marker=/var/tmp/sluice-package-test.installed
tmp=""

say() { echo "package test: $*"; }
fail() { echo "package test: FAIL: $*" >&2; exit 1; }
skip() { say "skipped: $*"; exit 77; }

pkg_present() {
  local status
  status=$(dpkg-query -W -f='${Status}' sluice 2>/dev/null || true)
  case "$status" in
    "" | *not-installed) return 1 ;;
    *) return 0 ;;
  esac
}

# dpkg with a wait for its lock (an apt-get elsewhere on the machine holds it
# for a while): retries for up to 2 minutes while dpkg says it is locked.
dpkg_locked() {
  local out rc tries=0
  while true; do
    rc=0
    out=$(DEBIAN_FRONTEND=noninteractive dpkg "$@" </dev/null 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] && [ "$tries" -lt 60 ] && grep -qi 'locked' <<<"$out"; then
      tries=$((tries + 1))
      sleep 2
      continue
    fi
    printf '%s\n' "$out"
    return "$rc"
  done
}

purge() {
  dpkg_locked --purge sluice
}

cleanup() {
  local rc=$?
  if [ -e "$marker" ]; then
    if pkg_present; then
      say "cleaning up: dpkg --purge sluice"
      purge >/dev/null 2>&1 || true
    fi
    rm -f "$marker"
  fi
  [ -n "$tmp" ] && rm -rf "$tmp"
  exit "$rc"
}

[ "$(id -u)" -eq 0 ] || skip "needs root for dpkg -i"
for tool in cpack dpkg dpkg-deb dpkg-query dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool not found (run packaging/install-deps.sh)"
done
[ -f "$build/CPackConfig.cmake" ] || fail "$build/CPackConfig.cmake missing (configure first)"

if [ -e "$marker" ]; then
  say "a previous run left the package installed; purging it"
  pkg_present && purge >/dev/null
  rm -f "$marker"
fi
pkg_present && skip "a sluice package is already installed; not touching it"
[ -e /etc/sluice/sluice.yaml ] && skip "/etc/sluice/sluice.yaml exists and belongs to no package"

trap cleanup EXIT
tmp=$(mktemp -d /tmp/sluice-deb-XXXXXX)

# 1. Build the .deb (cpack runs the build tree's install rules).
say "cpack -G DEB"
if ! (cd "$build" && cpack --config CPackConfig.cmake -G DEB -B "$tmp") >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log" >&2
  fail "cpack failed"
fi
debs=("$tmp"/sluice_*.deb)
[ -f "${debs[0]}" ] || { cat "$tmp/cpack.log" >&2; fail "cpack made no sluice_*.deb"; }
deb=${debs[0]}
say "built $(basename "$deb")"

# dpkg-shlibdeps filled in the library dependencies.
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libuv1 libyaml-cpp procps; do
  case "$depends" in *"$dep"*) ;; *) fail "Depends lacks $dep: $depends" ;; esac
done

# 2. Install it.
touch "$marker"
dpkg_locked --force-confold -i "$deb" || fail "dpkg -i $deb failed"

# 3. What it installed.
for f in /usr/sbin/sluice \
         /etc/sluice/sluice.yaml \
         /lib/systemd/system/sluice.service \
         /etc/logrotate.d/sluice \
         /usr/share/man/man8/sluice.8.gz \
         /usr/share/doc/sluice/README.md \
         /usr/share/doc/sluice/configuration.md; do
  [ -f "$f" ] || fail "$f not installed"
done
[ -x /usr/sbin/sluice ] || fail "/usr/sbin/sluice not executable"
cmp -s /etc/sluice/sluice.yaml "$src/packaging/sluice.yaml" \
  || fail "/etc/sluice/sluice.yaml differs from packaging/sluice.yaml"
cmp -s /lib/systemd/system/sluice.service "$src/packaging/sluice.service" \
  || fail "the installed unit differs from packaging/sluice.service"
gzip -t /usr/share/man/man8/sluice.8.gz || fail "sluice.8.gz is not a valid gzip file"
zcat /usr/share/man/man8/sluice.8.gz | grep -q '^\.SH SIGNALS' || fail "sluice.8.gz is not the man page"

conffiles=$(dpkg-query -W -f='${Conffiles}\n' sluice)
for c in /etc/sluice/sluice.yaml /etc/logrotate.d/sluice; do
  case "$conffiles" in *"$c "*) ;; *) fail "$c is not a conffile: $conffiles" ;; esac
done

/usr/sbin/sluice check --config /etc/sluice/sluice.yaml || fail "sluice check of the default config failed"
version=$(dpkg-query -W -f='${Version}' sluice)
/usr/sbin/sluice --version | grep -qF "$version" || fail "sluice --version does not say $version"

# 4. Purge: everything goes, the conffiles included.
say "dpkg --purge sluice"
purge || fail "dpkg --purge sluice failed"
rm -f "$marker"
for f in /usr/sbin/sluice /etc/sluice/sluice.yaml /lib/systemd/system/sluice.service \
         /etc/logrotate.d/sluice /usr/share/man/man8/sluice.8.gz /usr/share/doc/sluice; do
  [ ! -e "$f" ] || fail "$f still there after dpkg --purge"
done
pkg_present && fail "dpkg still lists sluice after the purge"
say "ok"
