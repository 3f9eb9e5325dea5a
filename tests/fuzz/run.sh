#!/bin/sh
# Runs libFuzzer targets built in BUILD_DIR (make fuzz does the build):
#   sh tests/fuzz/run.sh BUILD_DIR TARGET MINUTES [libFuzzer flags...]
# TARGET is request, response, config or all (each in turn, MINUTES each).
# The seed corpus is copied to a scratch directory first, so what the run
# adds never lands in the repository; a crashing input is written to
# BUILD_DIR/fuzz-artifacts/TARGET/ and the run stops with its status.
# Extra flags go to libFuzzer, e.g. -runs=10000000, or -jobs=2 -workers=2
# (whose per-job logs, fuzz-N.log, land in the artifacts directory too).
set -eu

build=$(cd "${1:?build dir}" && pwd)
which=${2:-all}
minutes=${3:-5}
shift 3 2>/dev/null || shift $#
here=$(cd "$(dirname "$0")" && pwd)

case "$which" in
  all) targets="request response config" ;;
  request|response|config) targets=$which ;;
  *) echo "run.sh: unknown target '$which' (request, response, config or all)" >&2; exit 2 ;;
esac

for t in $targets; do
  bin="$build/tests/fuzz/${t}_fuzz"
  [ -x "$bin" ] || { echo "run.sh: $bin not built (make fuzz builds it)" >&2; exit 2; }
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz-$t.XXXXXX")
  cp "$here/corpus/$t/"* "$corpus/"
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$artifacts"
  echo "fuzz: $t for $minutes min; corpus $corpus, crashes in $artifacts/" >&2
  (cd "$artifacts" && "$bin" -max_total_time=$((minutes * 60)) -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "$@" "$corpus")
done
