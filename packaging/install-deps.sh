#!/bin/sh
# Installs the Debian 12 packages sluice needs to build, test and run.
# Idempotent, and silent when everything is already there.
set -eu

# Build and unit-test dependencies; dpkg-dev (dpkg-shlibdeps for `make deb`),
# systemd (systemd-analyze) and procps (/bin/kill, which the unit uses) for
# the packaging tests.
PACKAGES="build-essential cmake pkg-config make
libuv1-dev node-llhttp libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libre2-dev catch2
curl
dpkg-dev systemd procps"

# Extras for `make bench`, `make asan` etc. are installed by those targets.
if [ "${1:-}" = "--with" ]; then
  shift
  PACKAGES="$PACKAGES $*"
fi

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages:$missing (run as root, or: sudo $0)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
