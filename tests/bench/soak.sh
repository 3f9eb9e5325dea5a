#!/usr/bin/env bash
# Soak: MINUTES of mixed load through sluice while its RSS and descriptors are
# sampled; both must stay flat.
#
#   bash tests/bench/soak.sh              # 10 minutes
#   MINUTES=2 bash tests/bench/soak.sh    # a quick look
#
# Load, all at once for the whole run, against a sluice-backend behind sluice
# (admin on):
#   - keep-alive traffic: GET /, 1 MiB downloads and 1 MiB uploads (wrk);
#   - a new connection per request (wrk with Connection: close);
#   - errors: app 500s, garbage (502), resets mid-response, a hang past
#     timeouts.response (504), smuggling-shaped requests (400), and clients
#     that give up mid-download (curl --max-time);
#   - a reload every RELOAD_EVERY seconds, with the config rewritten.
# Every SAMPLE seconds sluice's VmRSS, descriptors and open connections go
# to a CSV. At the end the load stops, idle connections time out, and:
#   - RSS growth after the warm-up (median of the last three samples minus
#     median of the first three after WARMUP) must be <= RSS_GROWTH_KIB;
#   - the descriptors must be back to exactly their count before the load;
#   - the keep-alive and new-connection traffic must have had no error, and
#     sluice must be alive.
# Exits 1 otherwise.
#
# Environment (defaults in brackets): MINUTES [10], SAMPLE [10] s,
# RELOAD_EVERY [5] s, WARMUP [a third of the run] s, RSS_GROWTH_KIB [4096],
# IO_THREADS [1] (sluice's io_threads), ACCESS_LOG [off] (a path: sluice's
# access log, kept after the run, and the summary lists every non-2xx answer
# to the keep-alive and new-connection traffic by status, path and upstream),
# CSV [/tmp/sluice-soak-<time>.csv], BUILD_DIR [build], SLUICE_BIN, BACKEND_BIN.
# Everything it starts is stopped by PID on exit, error or Ctrl-C.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MINUTES=${MINUTES:-10}
SAMPLE=${SAMPLE:-10}
RELOAD_EVERY=${RELOAD_EVERY:-5}
RSS_GROWTH_KIB=${RSS_GROWTH_KIB:-4096}
IO_THREADS=${IO_THREADS:-1}
ACCESS_LOG=${ACCESS_LOG:-off}
CSV=${CSV:-/tmp/sluice-soak-$(date +%Y%m%d-%H%M%S).csv}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SLUICE_BIN=${SLUICE_BIN:-$BUILD_DIR/cmd/sluice}
BACKEND_BIN=${BACKEND_BIN:-$BUILD_DIR/tests/support/sluice-backend}
DURATION=$((MINUTES * 60))
# The allocator's arenas and sluice's free lists reach their working size in
# the first minutes; the first third of the run is warm-up by default.
WARMUP=${WARMUP:-$((DURATION / 3))}
(( WARMUP < DURATION / 2 )) || WARMUP=$((DURATION / 3))

WORK=$(mktemp -d /tmp/sluice-soak.XXXXXX)
PIDS=()

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
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
command -v wrk >/dev/null || die "wrk is missing: sh packaging/install-deps.sh --with wrk"
command -v curl >/dev/null || die "curl is missing: sh packaging/install-deps.sh --with curl"

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
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

"$BACKEND_BIN" --listen 127.0.0.1:0 >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
BACKEND_PORT=$(port_from_log "$WORK/backend.log" 'listening on 127\.0\.0\.1:[0-9]+') ||
  die "the backend did not start: $(cat "$WORK/backend.log")"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Fixed ports: a reload keeps a listener only if its address is unchanged.
SLUICE_PORT=$(free_port)
ADMIN_PORT=$(free_port)

# Generation `gen` of the config: what changes from one to the next is a
# response header, the upstream's keep-alive size and the header timeout, so
# reloads touch routes, the pool (kept: same servers) and listener settings.
write_config() {
  local gen=$1
  cat >"$WORK/sluice.yaml.new" <<EOF
workers: 2
io_threads: $IO_THREADS
listeners:
  - name: web
    listen: "127.0.0.1:$SLUICE_PORT"
    timeouts: { header: $((5 + gen % 3))s, idle: 5s }
    limits: { max_body_bytes: 16MiB }
routes:
  - name: all
    upstream: app
    response_headers:
      set: { X-Soak-Generation: "$gen" }
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:$BACKEND_PORT" }
    keepalive: { max_idle: $((16 + gen % 2 * 16)), idle_timeout: 3s }
    timeouts: { response: 2s }
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
logging: { level: warn, access_log: { path: "$ACCESS_LOG", format: json } }
EOF
  mv "$WORK/sluice.yaml.new" "$WORK/sluice.yaml"
}

# Start-up needs the listening line (info); reloads run at warn so that the
# log stays small over a long run.
write_config 0
sed -i 's/level: warn/level: info/' "$WORK/sluice.yaml"
"$SLUICE_BIN" --config "$WORK/sluice.yaml" >"$WORK/sluice.log" 2>&1 &
PIDS+=($!)
SLUICE_PID=$!
port_from_log "$WORK/sluice.log" 'listener web listening on 127\.0\.0\.1:[0-9]+' >/dev/null ||
  die "sluice did not start: $(cat "$WORK/sluice.log")"
URL="http://127.0.0.1:$SLUICE_PORT"
curl -sf -o /dev/null "$URL/" || die "sluice does not answer GET /"
log "sluice pid $SLUICE_PID on $SLUICE_PORT (admin $ADMIN_PORT), backend on $BACKEND_PORT; $MINUTES min"

# Descriptors with no connection at all: after the warm-up requests'
# connections have timed out (client idle 5 s, upstream idle 3 s). libuv
# opens one descriptor per loop for good with its first TCP handle (its
# reserve against EMFILE), so with io_threads every loop must have made an
# upstream connection first: 32 new connections reach each of a few loops
# (the kernel spreads them) all but surely.
WARM_PIDS=()
for _ in $(seq 32); do
  curl -sf -o /dev/null "$URL/" &
  WARM_PIDS+=($!)
done
wait "${WARM_PIDS[@]}"
sleep 6
FDS_START=$(fds "$SLUICE_PID")
RSS_START=$(rss_kib "$SLUICE_PID")

# ---- load ------------------------------------------------------------------

cat >"$WORK/mixed.lua" <<'EOF'
-- Keep-alive mix: small GETs, 1 MiB downloads, 1 MiB uploads, paced.
-- Built in init(): wrk knows the Host header only from then on.
local reqs
function init()
  local body = string.rep("abcdefghijklmnopqrstuvwxyz", 40330):sub(1, 1048576)
  reqs = {
    wrk.format("GET", "/"),
    wrk.format("GET", "/"),
    wrk.format("GET", "/bytes?n=1048576"),
    wrk.format("POST", "/hash", {["Content-Type"] = "application/octet-stream"}, body),
  }
end
local i = 0
function request() i = i % #reqs + 1; return reqs[i] end
function delay() return 2 end
EOF
cat >"$WORK/close.lua" <<'EOF'
-- A new connection per request.
wrk.headers["Connection"] = "close"
function delay() return 10 end
EOF
cat >"$WORK/errors.lua" <<'EOF'
-- Errors of every kind; wrk counts them, nothing is expected of them but
-- that sluice survives them without growing.
local reqs
function init()
  reqs = {
    wrk.format("GET", "/status?code=500"),
    wrk.format("GET", "/garbage"),
    wrk.format("GET", "/reset-mid"),
    wrk.format("GET", "/sleep?ms=2500"),
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET /folded HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  }
end
local i = 0
function request() i = i % #reqs + 1; return reqs[i] end
function delay() return 20 end
EOF

wrk -t1 -c8 -d"${DURATION}s" --timeout 10s -s "$WORK/mixed.lua" "$URL/" >"$WORK/wrk-mixed.out" 2>&1 &
PIDS+=($!); WRK_MIXED=$!
wrk -t1 -c2 -d"${DURATION}s" --timeout 10s -s "$WORK/close.lua" "$URL/" >"$WORK/wrk-close.out" 2>&1 &
PIDS+=($!); WRK_CLOSE=$!
wrk -t1 -c2 -d"${DURATION}s" --timeout 5s -s "$WORK/errors.lua" "$URL/" >"$WORK/wrk-errors.out" 2>&1 &
PIDS+=($!); WRK_ERRORS=$!

# Clients that give up mid-download, one a second.
(
  end=$((SECONDS + DURATION))
  while ((SECONDS < end)); do
    curl -s -o /dev/null --max-time 0.2 "$URL/bytes?n=104857600"
    sleep 1
  done
) &
PIDS+=($!); ABORTER=$!

# Reloads.
(
  gen=1
  end=$((SECONDS + DURATION))
  while ((SECONDS < end)); do
    sleep "$RELOAD_EVERY"
    write_config "$gen"
    kill -HUP "$SLUICE_PID" 2>/dev/null || exit 0
    gen=$((gen + 1))
  done
  echo "$((gen - 1))" >"$WORK/reloads"
) &
PIDS+=($!); RELOADER=$!

# ---- sampling ----------------------------------------------------------------

echo "seconds,rss_kib,fds,connections_open" >"$CSV"
T0=$SECONDS
while (( SECONDS - T0 < DURATION )); do
  kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice died: $(tail -20 "$WORK/sluice.log")"
  open=$(curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" |
         awk '$1 == "sluice_connections_open" { print $2 }')
  echo "$((SECONDS - T0)),$(rss_kib "$SLUICE_PID"),$(fds "$SLUICE_PID"),${open:-}" >>"$CSV"
  sleep "$SAMPLE"
done
wait "$WRK_MIXED" "$WRK_CLOSE" "$WRK_ERRORS" "$ABORTER" "$RELOADER" 2>/dev/null
kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice died: $(tail -20 "$WORK/sluice.log")"

# Load over: idle connections time out, then the descriptors must be those
# sluice started with.
sleep 8
FDS_END=$(fds "$SLUICE_PID")
RSS_END=$(rss_kib "$SLUICE_PID")
echo "$((SECONDS - T0)),$RSS_END,$FDS_END,idle" >>"$CSV"

# ---- summary ------------------------------------------------------------------

mapfile -t ROWS < <(tail -n +2 "$CSV" | grep -v ',idle$')
rss_col() { cut -d, -f2 <<<"$1"; }
fds_col() { cut -d, -f3 <<<"$1"; }
N=${#ROWS[@]}
(( N >= 6 )) || die "only $N samples: run longer (MINUTES) or sample more often (SAMPLE)"
W=0
while (( W < N && $(cut -d, -f1 <<<"${ROWS[$W]}") < WARMUP )); do W=$((W + 1)); done
(( N - W >= 6 )) || W=$((N - 6))
RSS_WARM=$(median3 "$(rss_col "${ROWS[$W]}")" "$(rss_col "${ROWS[$((W + 1))]}")" "$(rss_col "${ROWS[$((W + 2))]}")")
RSS_LAST=$(median3 "$(rss_col "${ROWS[$((N - 3))]}")" "$(rss_col "${ROWS[$((N - 2))]}")" "$(rss_col "${ROWS[$((N - 1))]}")")
RSS_MAX=$(for r in "${ROWS[@]}"; do rss_col "$r"; done | sort -n | tail -1)
FDS_MAX=$(for r in "${ROWS[@]}"; do fds_col "$r"; done | sort -n | tail -1)
FDS_WARM=$(median3 "$(fds_col "${ROWS[$W]}")" "$(fds_col "${ROWS[$((W + 1))]}")" "$(fds_col "${ROWS[$((W + 2))]}")")
FDS_LAST=$(median3 "$(fds_col "${ROWS[$((N - 3))]}")" "$(fds_col "${ROWS[$((N - 2))]}")" "$(fds_col "${ROWS[$((N - 1))]}")")
GROWTH=$((RSS_LAST - RSS_WARM))
T_WARM=$(cut -d, -f1 <<<"${ROWS[$((W + 1))]}")
T_LAST=$(cut -d, -f1 <<<"${ROWS[$((N - 2))]}")
SLOPE=$(( GROWTH * 60 / (T_LAST > T_WARM ? T_LAST - T_WARM : 1) ))

wrk_line() { grep -E "$2" "$1" | sed 's/^ *//' | head -1; }
wrk_errors() {  # non-2xx/3xx responses plus socket errors in a wrk report
  local non2xx sock
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$1")
  sock=$(awk '/Socket errors:/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$1")
  echo $(( ${non2xx:-0} + ${sock:-0} ))
}

echo "soak: $MINUTES min, $N samples every ${SAMPLE} s, $(cat "$WORK/reloads" 2>/dev/null || echo '?') reloads; CSV: $CSV"
echo "keep-alive mix:   $(wrk_line "$WORK/wrk-mixed.out" 'requests in') ; errors $(wrk_errors "$WORK/wrk-mixed.out")"
echo "new connections:  $(wrk_line "$WORK/wrk-close.out" 'requests in') ; errors $(wrk_errors "$WORK/wrk-close.out")"
echo "error traffic:    $(wrk_line "$WORK/wrk-errors.out" 'requests in') ; $(wrk_line "$WORK/wrk-errors.out" 'Non-2xx' || true)"
echo "RSS KiB:          start $RSS_START, after warm-up $RSS_WARM, last $RSS_LAST, max $RSS_MAX, idle at the end $RSS_END; growth after warm-up (${T_WARM} s -> ${T_LAST} s) $GROWTH, $SLOPE KiB/min (limit $RSS_GROWTH_KIB)"
echo "descriptors:      start $FDS_START, after warm-up $FDS_WARM, last $FDS_LAST, max $FDS_MAX, idle at the end $FDS_END"

FAIL=0
if (( GROWTH > RSS_GROWTH_KIB )); then echo "FAIL: RSS grew by $GROWTH KiB after the warm-up"; FAIL=1; fi
if (( FDS_END != FDS_START )); then echo "FAIL: $FDS_END descriptors once idle, $FDS_START at the start"; FAIL=1; fi
if (( $(wrk_errors "$WORK/wrk-mixed.out") != 0 )); then echo "FAIL: errors in the keep-alive mix"; cat "$WORK/wrk-mixed.out"; FAIL=1; fi
if (( $(wrk_errors "$WORK/wrk-close.out") != 0 )); then echo "FAIL: errors on new connections"; cat "$WORK/wrk-close.out"; FAIL=1; fi
if [[ $ACCESS_LOG != off ]]; then
  # The error traffic's paths answer non-2xx by design; the others should not.
  echo "non-2xx to the keep-alive and new-connection traffic (count, status, request, upstream, duration):"
  python3 - "$ACCESS_LOG" <<'PY'
import collections, json, sys
seen = collections.Counter()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["target"] in ("/", "/hash", "/bytes?n=1048576") and not 200 <= e["status"] < 300:
        seen[(e["status"], e["method"] + " " + e["target"], e["upstream"] or "-",
              "%.1f s" % (e["duration_us"] / 1e6))] += 1
for key, n in seen.most_common(20):
    print("  %6d  %s" % (n, "  ".join(map(str, key))))
print("  (none)" if not seen else "")
PY
fi
if grep -qE 'error|critical' "$WORK/sluice.log"; then
  echo "sluice logged errors:"; grep -E 'error|critical' "$WORK/sluice.log" | sort | uniq -c | sort -rn | head -5
fi
((FAIL == 0)) && echo "PASS: RSS and descriptors flat"
exit "$FAIL"
