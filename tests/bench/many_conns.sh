#!/usr/bin/env bash
# 19,000 concurrent client connections through sluice: starts a backend and
# sluice (max_connections 20000) with the descriptor limit raised to the hard
# limit, opens CONNS keep-alive connections with tests/bench/many_conns.py,
# checks that every one is answered 200 (twice, before and after holding
# them), and reports sluice's RSS and descriptors with all of them open.
#
#   bash tests/bench/many_conns.sh
#
# Environment (defaults in brackets):
#   CONNS [19000]   connections held at once
#   HOLD [10]       seconds they are held
#   BUILD_DIR [build]; SLUICE_BIN, BACKEND_BIN override the binaries
#
# Exits 0 only if every connection was answered both times. Everything it
# starts is stopped by PID on exit, error or Ctrl-C.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONNS=${CONNS:-19000}
HOLD=${HOLD:-10}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SLUICE_BIN=${SLUICE_BIN:-$BUILD_DIR/cmd/sluice}
BACKEND_BIN=${BACKEND_BIN:-$BUILD_DIR/tests/support/sluice-backend}

WORK=$(mktemp -d /tmp/sluice-many.XXXXXX)
PIDS=()

log() { printf '[many_conns %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x $SLUICE_BIN ]] || die "no sluice at $SLUICE_BIN (build it, or set BUILD_DIR / SLUICE_BIN)"
[[ -x $BACKEND_BIN ]] || die "no sluice-backend at $BACKEND_BIN"

# Every process started from here on inherits the raised limit: CONNS client
# sockets in the client, as many plus upstream connections in sluice.
ulimit -n "$(ulimit -Hn)" || die "cannot raise the descriptor limit"
(( $(ulimit -n) >= CONNS + 200 )) || die "descriptor limit $(ulimit -n) is too low for $CONNS connections"

# "... listening on 127.0.0.1:PORT" in a log -> PORT (waits up to 10 s).
port_from_log() {
  local file=$1 pattern=$2 line
  for _ in $(seq 100); do
    line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null) && break
    sleep 0.1
  done
  [[ -n ${line:-} ]] || return 1
  sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

"$BACKEND_BIN" --listen 127.0.0.1:0 >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
BACKEND_PID=$!
BACKEND_PORT=$(port_from_log "$WORK/backend.log" 'listening on 127\.0\.0\.1:[0-9]+') ||
  die "the backend did not start: $(cat "$WORK/backend.log")"

cat >"$WORK/sluice.yaml" <<EOF
workers: 2
listeners:
  - name: web
    listen: "127.0.0.1:0"
    max_connections: $((CONNS + 500))
    timeouts: { idle: 10m }
routes:
  - name: all
    upstream: app
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:$BACKEND_PORT" }
    keepalive: { max_idle: 64 }
logging: { level: info, access_log: { path: "off" } }
EOF
"$SLUICE_BIN" --config "$WORK/sluice.yaml" >"$WORK/sluice.log" 2>&1 &
PIDS+=($!)
SLUICE_PID=$!
SLUICE_PORT=$(port_from_log "$WORK/sluice.log" 'listener web listening on 127\.0\.0\.1:[0-9]+') ||
  die "sluice did not start: $(cat "$WORK/sluice.log")"
log "backend pid $BACKEND_PID port $BACKEND_PORT; sluice pid $SLUICE_PID port $SLUICE_PORT; fd limit $(ulimit -n)"

curl -sf -o /dev/null "http://127.0.0.1:$SLUICE_PORT/" || die "sluice does not answer GET /"
RSS_BEFORE=$(rss_kib "$SLUICE_PID")
FDS_BEFORE=$(fds "$SLUICE_PID")
log "before: sluice VmRSS $RSS_BEFORE KiB, $FDS_BEFORE descriptors"

python3 "$ROOT/tests/bench/many_conns.py" --port "$SLUICE_PORT" --count "$CONNS" \
  --hold "$HOLD" --signal-file "$WORK/holding" >"$WORK/client.out" 2>"$WORK/client.err" &
PIDS+=($!)
CLIENT_PID=$!

# While the client holds every connection: sluice's figures.
RSS_HELD="" FDS_HELD=""
while kill -0 "$CLIENT_PID" 2>/dev/null; do
  if [[ -e $WORK/holding && -z $RSS_HELD ]]; then
    sleep 1  # let the last responses' buffers go back
    RSS_HELD=$(rss_kib "$SLUICE_PID")
    FDS_HELD=$(fds "$SLUICE_PID")
    log "holding: sluice VmRSS $RSS_HELD KiB, $FDS_HELD descriptors"
  fi
  sleep 0.2
done
wait "$CLIENT_PID"
CLIENT_RC=$?
cat "$WORK/client.err" >&2

kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice died: $(tail -20 "$WORK/sluice.log")"
READY=$(awk '$1 == "ready" { print $2 " in " $3 " s" }' "$WORK/client.out")
AGAIN=$(awk '$1 == "again" { print $2 " in " $3 " s" }' "$WORK/client.out")
ERRORS=$(awk '$1 == "errors" { print $2 }' "$WORK/client.out")
ERRORS=${ERRORS:-unknown}

sleep 1
RSS_AFTER=$(rss_kib "$SLUICE_PID")
FDS_AFTER=$(fds "$SLUICE_PID")

echo "connections:        $CONNS (held ${HOLD} s)"
echo "first GET, 200:     $READY"
echo "second GET, 200:    $AGAIN"
echo "errors:             $ERRORS"
echo "sluice VmRSS:       before $RSS_BEFORE KiB, holding ${RSS_HELD:-?} KiB, after $RSS_AFTER KiB"
if [[ -n $RSS_HELD ]]; then
  echo "per connection:     $(( (RSS_HELD - RSS_BEFORE) * 1024 / CONNS )) bytes"
fi
echo "sluice descriptors: before $FDS_BEFORE, holding ${FDS_HELD:-?}, after $FDS_AFTER"
echo "sluice CPU:         $(awk '{ printf "%.1f s", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$SLUICE_PID/stat")"
if grep -qiE 'error|warn' "$WORK/sluice.log"; then
  echo "sluice log warnings/errors:"
  grep -iE 'error|warn' "$WORK/sluice.log" | head -5
fi
[[ $CLIENT_RC -eq 0 && $ERRORS == 0 ]]
