#!/usr/bin/env bash
# Benchmarks sluice against the backend alone, nginx, HAProxy and Caddy, all
# on loopback, and writes the medians into docs/benchmarks.md.
#
#   bash tests/bench/run.sh
#
# Environment (defaults in brackets):
#   ROUNDS [3]        interleaved rounds; every figure is the median
#   DURATION [10]     seconds per wrk run
#   IDLE_CONNS [10000] idle connections for the memory figure
#   TARGETS ["direct sluice nginx1 nginx2 haproxy1 haproxy2 caddy"]
#   BUILD_DIR [build] SKIP_BUILD [0]  where to build, or use what is there
#   SLUICE_BIN, BACKEND_BIN           override the binaries
#   OUT [docs/benchmarks.md]          report file (results between markers)
#
# See tests/bench/README.md for what each figure means. A target that fails
# (does not start, answers wrongly, dies) shows "n/a"; the run goes on.
# Every process started here is stopped by PID on exit, error or Ctrl-C.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR="$ROOT/tests/bench"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
TARGETS=${TARGETS:-"direct sluice sluice2 nginx1 nginx2 haproxy1 haproxy2 caddy"}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SKIP_BUILD=${SKIP_BUILD:-0}
SLUICE_BIN=${SLUICE_BIN:-$BUILD_DIR/cmd/sluice}
BACKEND_BIN=${BACKEND_BIN:-$BUILD_DIR/tests/support/sluice-backend}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
BIG=10485760  # bytes moved per request in the transfer figures (10 MiB)

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
PIDS=()                 # every process we started, stopped by cleanup()
declare -A PORT PID WHY  # per target: listening port, main PID, reason for n/a
declare -A IDLE_HELD     # per target: idle connections actually held, if fewer
# HAProxy reserves two descriptors per `maxconn` and refuses to start if the
# fd limit (20,000 here, not raisable) is below that, so it gets what fits.
HAPROXY_MAXCONN=$(( IDLE_CONNS + 500 < ($(ulimit -Hn) - 200) / 2 ? IDLE_CONNS + 500 : ($(ulimit -Hn) - 200) / 2 ))

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; done
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

# ---- Setup -----------------------------------------------------------------

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

# Installs wrk, nginx, HAProxy and Caddy from Debian if missing. Services must not
# start on install, so a policy-rc.d denying them is put in place if none is.
install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx-light)
  [[ -x /usr/sbin/haproxy ]] || command -v haproxy >/dev/null || missing+=(haproxy)
  command -v caddy >/dev/null || missing+=(caddy)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d added=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy"
    added=1
  fi
  as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >&2
  local rc=$?
  ((added)) && as_root rm -f "$policy"
  ((rc == 0)) || log "warning: apt-get failed; targets needing ${missing[*]} will show n/a"
}

build() {
  ((SKIP_BUILD)) && return 0
  log "building in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2 ||
    die "cmake configure failed (SKIP_BUILD=1 with BACKEND_BIN/SLUICE_BIN uses prebuilt binaries)"
  # Separately, so a broken sluice build still leaves the backend for the peers.
  cmake --build "$BUILD_DIR" -j2 --target sluice-backend >&2 || die "sluice-backend does not build"
  cmake --build "$BUILD_DIR" -j2 --target sluice >&2 || log "warning: sluice does not build"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for 127.0.0.1:$1 to accept connections while $2 lives.
wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Starts "$@" in the background with output to $WORK/$1.log; sets STARTED.
spawn() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# Reaps a process started here and drops it from PIDS, so cleanup() never
# signals a PID that may since have been reused.
reap() {
  wait "$1" 2>/dev/null
  local keep=() pid
  for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
}

start_backend() {
  spawn backend "$BACKEND_BIN" --listen 127.0.0.1:0
  PID[direct]=$STARTED
  for _ in $(seq 100); do
    local line
    line=$(grep -m1 '^listening on ' "$WORK/backend.log" 2>/dev/null) &&
      { PORT[direct]=${line##*:}; return 0; }
    sleep 0.1
  done
  die "sluice-backend did not start: $(cat "$WORK/backend.log")"
}

write_sluice_config() {
  cat >"$1" <<EOF
busy_poll_us: ${3:-0}
io_threads: ${4:-1}
listeners:
  - name: bench
    listen: "127.0.0.1:$2"
    max_connections: 19000
    timeouts: { idle: 300s }
    limits: { max_body_bytes: 64MiB }
routes:
  - name: all
    match: { path_prefix: "/" }
    upstream: backend
    buffer_request: false
upstreams:
  backend:
    servers:
      - { address: "127.0.0.1:${PORT[direct]}", max_concurrent: 0 }
    keepalive: { max_idle: 64 }
buffering: { max_response_file: 0 }
logging:
  level: warn
  access_log: { path: "off" }
EOF
}

write_nginx_config() {
  local dir=$1 port=$2 workers=$3
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$( ((EUID == 0)) && echo "user root;" )
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_max_temp_file_size 0;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  upstream backend {
    server 127.0.0.1:${PORT[direct]};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

write_haproxy_config() {
  cat >"$1" <<EOF
global
  nbthread $3
  maxconn $HAPROXY_MAXCONN
  ${4:-}
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  timeout http-request 30s
frontend fe
  bind 127.0.0.1:$2
  default_backend be
backend be
  server app 127.0.0.1:${PORT[direct]} pool-max-conn 64
EOF
}

# Caddy as a plain reverse proxy: no admin API, no TLS, no access log,
# streamed bodies (its default), a keep-alive pool of 64 like the others.
# GOMAXPROCS is left to Go: both CPUs, like nginx's and HAProxy's 2.
write_caddy_config() {
  cat >"$1" <<EOF
{
  admin off
  auto_https off
  log {
    level ERROR
  }
}
http://127.0.0.1:$2 {
  reverse_proxy 127.0.0.1:${PORT[direct]} {
    transport http {
      keepalive 300s
      keepalive_idle_conns 64
      keepalive_idle_conns_per_host 64
    }
  }
}
EOF
}

start_target() {
  local t=$1 port
  port=$(free_port)
  case $t in
    direct) return 0 ;;
    sluice | sluice-bp | sluice2)
      [[ -x $SLUICE_BIN ]] || { WHY[$t]="not built"; return 1; }
      write_sluice_config "$WORK/$t.yaml" "$port" "$([[ $t == sluice-bp ]] && echo 100 || echo 0)" \
        "$([[ $t == sluice2 ]] && echo 2 || echo 1)"
      spawn "$t" "$SLUICE_BIN" --config "$WORK/$t.yaml"
      ;;
    nginx1 | nginx2)
      local nginx
      nginx=$(command -v nginx || echo /usr/sbin/nginx)
      [[ -x $nginx ]] || { WHY[$t]="nginx not installed"; return 1; }
      write_nginx_config "$WORK/$t" "$port" "${t#nginx}"
      spawn "$t" "$nginx" -e "$WORK/$t/error.log" -p "$WORK/$t" -c "$WORK/$t/nginx.conf" \
        -g 'daemon off;'
      ;;
    haproxy1 | haproxy2 | haproxy1-bp)
      local haproxy threads=${t#haproxy}
      haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
      [[ -x $haproxy ]] || { WHY[$t]="haproxy not installed"; return 1; }
      write_haproxy_config "$WORK/$t.cfg" "$port" "${threads%-bp}" \
        "$([[ $t == *-bp ]] && echo busy-polling)"
      spawn "$t" "$haproxy" -db -f "$WORK/$t.cfg"
      ;;
    caddy)
      local caddy
      caddy=$(command -v caddy || echo /usr/bin/caddy)
      [[ -x $caddy ]] || { WHY[$t]="caddy not installed"; return 1; }
      mkdir -p "$WORK/caddy"
      write_caddy_config "$WORK/caddy/Caddyfile" "$port"
      spawn "$t" env HOME="$WORK/caddy" XDG_DATA_HOME="$WORK/caddy" XDG_CONFIG_HOME="$WORK/caddy" \
        "$caddy" run --adapter caddyfile --config "$WORK/caddy/Caddyfile"
      ;;
    *) die "unknown target $t" ;;
  esac
  PID[$t]=$STARTED
  PORT[$t]=$port
  wait_port "$port" "$STARTED" || { WHY[$t]="did not start: $(tail -c 300 "$WORK/$t.log")"; return 1; }
}

# The target answers GET / with the backend's page.
check_get() {
  curl -sf -m 10 "http://127.0.0.1:${PORT[$1]}/" | grep -q 'hello from the sluice demo backend' ||
    { WHY[$1]="GET / does not reach the backend"; return 1; }
}

# The target moves 10 MiB both ways intact: the download is re-hashed by the
# backend, the upload's hash is compared with the pattern's.
check_transfer() {
  local t=$1 base="http://127.0.0.1:${PORT[$1]}" direct="http://127.0.0.1:${PORT[direct]}"
  local want got
  want=$(curl -sf -m 30 -D - -o "$WORK/pattern.bin" "$direct/bytes?n=$BIG" |
    awk 'tolower($1) == "x-body-hash:" { print $2 }' | tr -d '\r')
  got=$(curl -sf -m 30 -o "$WORK/download.bin" "$base/bytes?n=$BIG" &&
    curl -sf -m 30 -H "Expect:" --data-binary @"$WORK/download.bin" "$direct/hash")
  if [[ $got != "$want $BIG" ]]; then
    WHY[$t]="10 MiB download corrupted or failed"
    return 1
  fi
  got=$(curl -sf -m 30 -H "Expect:" --data-binary @"$WORK/pattern.bin" "$base/hash")
  if [[ $got != "$want $BIG" ]]; then
    WHY[$t]="10 MiB upload corrupted or failed"
    return 1
  fi
}

# ---- Measuring -------------------------------------------------------------

check_and_warm() {
  local t=$1
  check_transfer "$t" || { log "$t: ${WHY[$t]}"; return 0; }
  # Warm-up: fills connection pools and caches before anything counts.
  timeout 30 wrk -t1 -c64 -d2s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1
}

# Runs wrk; prints its report, or nothing if the run failed or any response
# was not 2xx/3xx (a proxy answering 502 fast is not fast).
run_wrk() {
  local out
  if out=$(timeout $((DURATION + 30)) wrk --timeout 10s -d"${DURATION}s" "$@" 2>&1) &&
    ! grep -q 'Non-2xx or 3xx' <<<"$out" &&
    awk '/^Requests\/sec:/ { ok = $2 > 0 } END { exit !ok }' <<<"$out"; then
    echo "$out"
    return 0
  fi
  log "wrk $* failed: $(tail -n 4 <<<"$out" | tr -s ' \n' ' ')"
  return 1
}

rps() { awk '/^Requests\/sec:/ { print $2 }'; }
# Latency percentile $1 ("50%") from wrk --latency, in microseconds.
pct() {
  awk -v p="$1" '$1 == p {
    v = $2; u = v; sub(/[0-9.]+/, "", u); v += 0
    if (u == "ms") v *= 1000; else if (u == "s") v *= 1000000; else if (u == "m") v *= 60000000
    printf "%.0f\n", v }'
}

record() { echo "$3" >>"$WORK/res.$1.$2"; }  # target metric value

# CPU time (clock ticks, user + system, all threads) of a process and its
# children (nginx's workers).
cpu_ticks() {
  local total=0 pid t
  for pid in "$1" $(pgrep -P "$1"); do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) && total=$((total + ${t:-0}))
  done
  echo "$total"
}

measure_round() {
  local t=$1 round=$2 url="http://127.0.0.1:${PORT[$1]:-0}" out
  if [[ -z ${WHY[$t]:-} ]] && ! kill -0 "${PID[$t]}" 2>/dev/null; then
    WHY[$t]="died during the run"
  fi
  if [[ -n ${WHY[$t]:-} ]]; then
    for m in rps p50 p99 cpu p50c1 p99c1 down up; do record "$t" $m n/a; done
    return
  fi
  log "round $round: $t"
  local ticks_before ticks_after
  ticks_before=$(cpu_ticks "${PID[$t]}")
  if out=$(run_wrk -t1 -c64 --latency "$url/"); then
    ticks_after=$(cpu_ticks "${PID[$t]}")
    record "$t" rps "$(rps <<<"$out")"
    record "$t" p50 "$(pct 50% <<<"$out")"
    record "$t" p99 "$(pct 99% <<<"$out")"
    # µs of CPU per request: the proxy's own cost (for direct, the backend's).
    record "$t" cpu "$(awk -v d=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" \
      '/ requests in / { printf "%.1f\n", d * 1e6 / hz / $1 }' <<<"$out")"
  else
    for m in rps p50 p99 cpu; do record "$t" $m n/a; done
  fi
  if out=$(run_wrk -t1 -c1 --latency "$url/"); then
    record "$t" p50c1 "$(pct 50% <<<"$out")"
    record "$t" p99c1 "$(pct 99% <<<"$out")"
  else
    record "$t" p50c1 n/a
    record "$t" p99c1 n/a
  fi
  if out=$(run_wrk -t1 -c1 "$url/bytes?n=$BIG"); then
    record "$t" down "$(rps <<<"$out" | awk -v b=$BIG '{ printf "%.0f\n", $1 * b / 1e6 }')"
  else
    record "$t" down n/a
  fi
  if out=$(UPLOAD_BYTES=$BIG run_wrk -t1 -c1 -s "$BENCH_DIR/upload.lua" "$url/"); then
    record "$t" up "$(rps <<<"$out" | awk -v b=$BIG '{ printf "%.0f\n", $1 * b / 1e6 }')"
  else
    record "$t" up n/a
  fi
}

# Resident memory (KiB) of a process and its children (nginx's workers).
rss_kib() {
  local total=0 pid kib
  for pid in "$1" $(pgrep -P "$1"); do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# Memory per idle keep-alive client connection, in KiB.
measure_idle() {
  local t=$1
  if [[ -n ${WHY[$t]:-} ]] || ! kill -0 "${PID[$t]}" 2>/dev/null; then
    record "$t" idle n/a
    return
  fi
  local n=$IDLE_CONNS before after helper
  if [[ $t == haproxy* ]] && ((n > HAPROXY_MAXCONN - 100)); then
    n=$((HAPROXY_MAXCONN - 100))
    IDLE_HELD[$t]=$n
  fi
  log "idle connections: $t ($n)"
  before=$(rss_kib "${PID[$t]}")
  spawn "idle.$t" python3 "$BENCH_DIR/idle_conns.py" --port "${PORT[$t]}" --count "$n" \
    --timeout 120 --hold 300
  helper=$STARTED
  for _ in $(seq 1300); do
    grep -q '^ready' "$WORK/idle.$t.log" 2>/dev/null && break
    kill -0 "$helper" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q '^ready' "$WORK/idle.$t.log"; then
    sleep 1  # let the proxy settle (upstream connections back in the pool)
    after=$(rss_kib "${PID[$t]}")
    record "$t" idle "$(awk -v d=$((after - before)) -v n="$n" 'BEGIN { printf "%.0f\n", d * 1024 / n }')"
  else
    log "idle connections failed for $t: $(tail -c 300 "$WORK/idle.$t.log")"
    record "$t" idle n/a
  fi
  kill -TERM "$helper" 2>/dev/null
  reap "$helper"
}

# ---- Reporting -------------------------------------------------------------

# Median of the numeric lines of a file; n/a if there are none.
median() {
  grep -E '^-?[0-9.]+$' "$1" 2>/dev/null | sort -g |
    awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "n/a"; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Per-round difference of target $1's metric $2 from direct's, into res.$1.add$2.
added_latency() {
  local t=$1 m=$2
  paste -d' ' "$WORK/res.$t.$m" "$WORK/res.direct.$m" |
    awk '{ if ($1 ~ /^[0-9]/ && $2 ~ /^[0-9]/) print $1 - $2; else print "n/a" }' \
      >"$WORK/res.$t.add$m"
}

# fmt PRINTF-FORMAT VALUE, passing n/a through.
fmt() {
  if [[ $2 == n/a ]]; then echo n/a; else awk -v f="$1" -v v="$2" 'BEGIN { printf f "\n", v }'; fi
}

label() {
  case $1 in
    direct) echo "backend alone" ;;
    sluice) echo "sluice" ;;
    sluice-bp) echo "sluice, busy_poll_us 100" ;;
    sluice2) echo "sluice, io_threads 2" ;;
    haproxy1-bp) echo "HAProxy, 1 thread, busy-polling" ;;
    nginx1) echo "nginx, 1 worker" ;;
    nginx2) echo "nginx, 2 workers" ;;
    haproxy1) echo "HAProxy, 1 thread" ;;
    haproxy2) echo "HAProxy, 2 threads" ;;
    caddy) echo "Caddy" ;;
  esac
}

versions() {
  local nginx haproxy sluice="not built"
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
  [[ -x $SLUICE_BIN ]] && sluice=$(timeout 5 "$SLUICE_BIN" --version 2>&1 | head -1)
  echo "- sluice: $sluice (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
    "$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+ local changes'))"
  echo "- nginx: $("$nginx" -v 2>&1 | sed 's/^nginx version: //')"
  echo "- HAProxy: $("$haproxy" -v 2>&1 | head -1 | sed 's/^HAProxy version //')"
  echo "- Caddy: $(caddy version 2>/dev/null || echo 'not installed')"
  echo "- wrk: $(wrk -v 2>&1 | head -1)"
  echo "- sluice-backend and sluice built with: $(c++ --version | head -1)"
}

# The best (highest or lowest) median of metric $2 over the peers listed
# after it that were measured; n/a if none was.
best_of() {
  local dir=$1 m=$2 t v out=n/a
  shift 2
  for t in "$@"; do
    [[ " $TARGETS " == *" $t "* ]] || continue
    v=$(median "$WORK/res.$t.$m")
    [[ $v == n/a ]] && continue
    if [[ $out == n/a ]] || awk -v a="$v" -v b="$out" -v d="$dir" \
      'BEGIN { exit !((d == "max") ? a > b : a < b) }'; then out=$v; fi
  done
  echo "$out"
}

# ratio A B: A / B to two places, n/a if either is.
ratio() {
  if [[ $1 == n/a || $2 == n/a ]]; then echo n/a; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; fi
}

# yes/no for "A OP B" (OP: ge or le), n/a if either is.
holds() {
  if [[ $2 == n/a || $3 == n/a ]]; then echo n/a; return; fi
  awk -v a="$2" -v b="$3" -v op="$1" 'BEGIN { ok = (op == "ge") ? a >= b : a <= b; print ok ? "yes" : "no" }'
}

# Issue 7's targets for each sluice target of this run, against the peers
# of the same run: (a) the peers using both CPUs (nginx 2 workers, HAProxy 2
# threads, Caddy), the rest against every peer measured.
targets_table() {
  local t peers2=(nginx2 haproxy2 caddy) peers=(nginx1 nginx2 haproxy1 haproxy2 haproxy1-bp caddy)
  local rps99 best_rps best_p99 best_add99 best_down best_up best_idle
  best_rps=$(best_of max rps "${peers2[@]}")
  best_p99=$(best_of min p99 "${peers2[@]}")
  best_add99=$(best_of min addp99c1 "${peers[@]}")
  best_down=$(best_of max down "${peers[@]}")
  best_up=$(best_of max up "${peers[@]}")
  best_idle=$(best_of min idle "${peers[@]}")
  for t in sluice sluice2 sluice-bp; do
    [[ " $TARGETS " == *" $t "* ]] || continue
    local rps p99 add50 add99 down up idle r_rps r_down r_up r_idle
    rps=$(median "$WORK/res.$t.rps") p99=$(median "$WORK/res.$t.p99")
    add50=$(median "$WORK/res.$t.addp50c1") add99=$(median "$WORK/res.$t.addp99c1")
    down=$(median "$WORK/res.$t.down") up=$(median "$WORK/res.$t.up") idle=$(median "$WORK/res.$t.idle")
    r_rps=$(ratio "$rps" "$best_rps") r_down=$(ratio "$down" "$best_down")
    r_up=$(ratio "$up" "$best_up") r_idle=$(ratio "$idle" "$best_idle")
    echo
    echo "Targets for $(label "$t"), against the best peer of this run:"
    echo
    echo "| target | sluice | best peer | ratio | met? |"
    echo "|---|---:|---:|---:|---|"
    echo "| (a) req/s, 64 conns, ≥ 1.25× nginx 2 workers / HAProxy 2 threads / Caddy | $(fmt %.0f "$rps") | $(fmt %.0f "$best_rps") | $r_rps | $(holds ge "$r_rps" 1.25) |"
    echo "| (a) p99 no worse | $(fmt '%.0f µs' "$p99") | $(fmt '%.0f µs' "$best_p99") | $(ratio "$p99" "$best_p99") | $(holds le "$p99" "$best_p99") |"
    echo "| (b) added p50, 1 conn, ≤ 40 µs | $(fmt '%+.0f µs' "$add50") | — | — | $(holds le "$add50" 40) |"
    echo "| (b) added p99, 1 conn, no worse | $(fmt '%+.0f µs' "$add99") | $(fmt '%+.0f µs' "$best_add99") | — | $(holds le "$add99" "$best_add99") |"
    echo "| (c) 10 MiB download MB/s, ≥ 1.25× | $(fmt %.0f "$down") | $(fmt %.0f "$best_down") | $r_down | $(holds ge "$r_down" 1.25) |"
    echo "| (c) 10 MiB upload MB/s, ≥ 1.25× | $(fmt %.0f "$up") | $(fmt %.0f "$best_up") | $r_up | $(holds ge "$r_up" 1.25) |"
    echo "| (d) RSS per idle conn, ≤ 0.75× | $(fmt '%.0f B' "$idle") | $(fmt '%.0f B' "$best_idle") | $r_idle | $(holds le "$r_idle" 0.75) |"
  done
}

report() {
  local t
  for t in $TARGETS; do
    [[ $t == direct ]] && continue
    added_latency "$t" p50c1
    added_latency "$t" p99c1
  done
  {
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'): $ROUNDS interleaved rounds of ${DURATION} s per figure, medians."
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
      "Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM." \
      "Load average when the run started: $LOAD_AT_START (anything well above 0 means other work competed)." \
      "Load generator, proxy and backend share these CPUs."
    echo
    versions
    echo
    echo "| target | req/s (64 conns) | p50 | p99 | CPU per request | added p50 (1 conn) | added p99 (1 conn) | 10 MiB download MB/s | 10 MiB upload MB/s | RSS per idle conn |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in $TARGETS; do
      local add50=— add99=—
      if [[ $t != direct ]]; then
        add50=$(fmt '%+.0f µs' "$(median "$WORK/res.$t.addp50c1")")
        add99=$(fmt '%+.0f µs' "$(median "$WORK/res.$t.addp99c1")")
      fi
      echo "| $(label "$t") | $(fmt %.0f "$(median "$WORK/res.$t.rps")")" \
        "| $(fmt '%.0f µs' "$(median "$WORK/res.$t.p50")")" \
        "| $(fmt '%.0f µs' "$(median "$WORK/res.$t.p99")")" \
        "| $(fmt '%.1f µs' "$(median "$WORK/res.$t.cpu")") | $add50 | $add99" \
        "| $(fmt %.0f "$(median "$WORK/res.$t.down")") | $(fmt %.0f "$(median "$WORK/res.$t.up")")" \
        "| $(fmt '%.0f B' "$(median "$WORK/res.$t.idle")") |"
    done
    targets_table
    echo
    echo "Backend alone, one connection: p50 $(fmt '%.0f µs' "$(median "$WORK/res.direct.p50c1")")," \
      "p99 $(fmt '%.0f µs' "$(median "$WORK/res.direct.p99c1")") (the added columns are relative to these)."
    local notes=""
    for t in $TARGETS; do
      [[ -n ${WHY[$t]:-} ]] && notes+="- $(label "$t"): ${WHY[$t]//$'\n'/ }"$'\n'
    done
    [[ -n $notes ]] && printf '\nNot measured:\n\n%s' "$notes"
    for t in "${!IDLE_HELD[@]}"; do
      echo
      echo "$(label "$t"): memory measured over ${IDLE_HELD[$t]} idle connections, all its fd budget allows."
    done
    echo
    echo "Commands (URL = the target's http://127.0.0.1:PORT):"
    echo
    echo '```'
    echo "wrk -t1 -c64 -d${DURATION}s --latency --timeout 10s URL/"
    echo "wrk -t1 -c1 -d${DURATION}s --latency --timeout 10s URL/"
    echo "wrk -t1 -c1 -d${DURATION}s --timeout 10s URL/bytes?n=$BIG"
    echo "wrk -t1 -c1 -d${DURATION}s --timeout 10s -s tests/bench/upload.lua URL/   # POST $BIG bytes to /hash"
    echo "python3 tests/bench/idle_conns.py --port PORT --count $IDLE_CONNS   # RSS before/after"
    echo '```'
  } >"$WORK/report.md"
}

# Replaces what lies between the markers in $OUT (creating it if need be).
write_report() {
  local begin='<!-- bench:begin -->' end='<!-- bench:end -->'
  if [[ ! -f $OUT ]] || ! grep -q "$begin" "$OUT"; then
    mkdir -p "$(dirname "$OUT")"
    # shellcheck disable=SC2016  # the backquotes are Markdown, not a command
    printf '# Benchmarks\n\nGenerated by %s; see tests/bench/README.md.\n\n%s\n%s\n' \
      '`bash tests/bench/run.sh`' "$begin" "$end" >>"$OUT"
  fi
  awk -v begin="$begin" -v end="$end" -v report="$WORK/report.md" '
    $0 == begin { print; while ((getline line < report) > 0) print line; skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }' "$OUT" >"$WORK/out.md" && cat "$WORK/out.md" >"$OUT"
  log "results written to $OUT"
}

# Only the target being measured runs; the others are stopped (SIGSTOP, with
# their children: nginx's workers). An idle proxy costs nothing, but one
# that busy-polls (haproxy1-bp, and sluice-bp for a moment after traffic)
# would take a CPU from every other target's figures.
freeze() {
  local pid
  for pid in "${PID[$1]}" $(pgrep -P "${PID[$1]}"); do kill -STOP "$pid" 2>/dev/null; done
}
thaw() {
  local pid
  for pid in "${PID[$1]}" $(pgrep -P "${PID[$1]}"); do kill -CONT "$pid" 2>/dev/null; done
}
# Runs "$@" with only target $1 (and the backend) running.
alone() {
  local t=$1 o
  shift
  for o in $TARGETS; do [[ $o != direct && $o != "$t" && -n ${PID[$o]:-} ]] && freeze "$o"; done
  [[ $t != direct && -n ${PID[$t]:-} ]] && thaw "$t"
  "$@"
  for o in $TARGETS; do [[ $o != direct && -n ${PID[$o]:-} ]] && thaw "$o"; done
  return 0
}

# ---- Main ------------------------------------------------------------------

main() {
  [[ $ROUNDS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and DURATION must be positive integers"
  local n
  LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
  n=$(wc -w <<<"$TARGETS")
  # 4 wrk runs per target and round; about 30 s per target to check, warm up
  # and hold the idle connections.
  log "about $(((ROUNDS * n * 4 * (DURATION + 1) + n * 30 + 59) / 60)) min:" \
    "$ROUNDS rounds x $n targets x 4 runs of ${DURATION}s"
  install_tools
  command -v wrk >/dev/null || die "wrk is not available"
  build
  [[ -x $BACKEND_BIN ]] || die "no backend at $BACKEND_BIN"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null

  start_backend
  log "backend on port ${PORT[direct]}"
  local t
  for t in $TARGETS; do
    [[ $t == direct ]] && continue
    if start_target "$t"; then
      log "$t on port ${PORT[$t]}"
    else
      log "$t: ${WHY[$t]}"
    fi
  done
  for t in $TARGETS; do
    [[ -z ${WHY[$t]:-} ]] && ! check_get "$t" && log "$t: ${WHY[$t]}"
  done
  # Memory first, while every process is fresh: after the big transfers
  # their heaps keep freed buffers that new connections would reuse unseen.
  for t in $TARGETS; do alone "$t" measure_idle "$t"; done
  for t in $TARGETS; do
    [[ -z ${WHY[$t]:-} ]] || continue
    alone "$t" check_and_warm "$t"
  done

  for round in $(seq "$ROUNDS"); do
    for t in $TARGETS; do alone "$t" measure_round "$t" "$round"; done
  done

  report
  cat "$WORK/report.md"
  write_report
}

main "$@"
