#!/usr/bin/env python3
"""Measures sluice's queue discipline under overload and writes the medians
into docs/overload.md.

    python3 tests/bench/overload.py            # ~10 min with the defaults
    ROUNDS=1 DURATION=4 python3 tests/bench/overload.py   # a quick look

One sluice-legacy-backend (a thread-per-request app: 8 threads, 40-60 ms per
request, so about 160 req/s) sits behind sluice (max_concurrent 8, queue of
1000, 5 s timeout, no access log). An open-loop generator offers Poisson
arrivals at a multiple of that capacity: each request is a new connection
whose client gives up (closes its socket) when it has no answer within its
patience, drawn per request. Arrivals never wait for answers, because under
real overload users keep arriving however slow the server gets.

Each run starts a fresh sluice with one queue configuration, offers load for
WARMUP + DURATION seconds and counts the requests that arrived during the
DURATION window, then keeps offering load for the longest patience so those
requests meet the same conditions to the end. Configurations and loads are
interleaved, and ROUNDS rounds repeat the whole set (in a rotated order);
each figure is the median over rounds. Every round uses the same arrival and
patience sequences for every configuration (common random numbers), so the
configurations differ by the discipline, not by the dice.

Environment (or the matching --flag; defaults in brackets):
  ROUNDS [2]            rounds over every configuration and load
  DURATION [4]          measured seconds per run
  WARMUP [3]            seconds of load before the window opens (longer than
                        the longest interval, so every queue has settled)
  LOADS ["0.8 1.5 3"]   offered load as multiples of capacity
  CONFIGS [10 of them]  configurations to run: "fifo" or
                        "adaptive-<interval>-<target>" (e.g. adaptive-1s-200ms),
                        each optionally with "+deadline" (see CONFIGS below)
  PATIENCE ["0.5 2"]    client patience, uniform between these (seconds)
  SEED [1]              base of the random sequences
  MAX_LAG_MS [25]       a run whose generator started its requests later than
                        this (p99) was not open-loop: it is repeated...
  RETRIES [2]           ...at most this many times; then it is left out of the
                        medians and listed under the table
  BUILD_DIR [build]  SKIP_BUILD [0]  SLUICE_BIN, BACKEND_BIN
  OUT [docs/overload.md] report file (the text between its markers is replaced)
  RAW [none]            also write every run's figures to this JSON file

Every process started here is stopped by PID on exit, error, Ctrl-C or
SIGTERM.
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The app: THREADS threads, SERVICE_MS + 0..JITTER_MS ms a request (50 on
# average), a queue of its own for APP_QUEUE connections.
THREADS, SERVICE_MS, JITTER_MS, APP_QUEUE = 8, 40, 20, 16
CAPACITY = THREADS * 1000.0 / (SERVICE_MS + JITTER_MS / 2)  # req/s: 160

# The configurations run by default. A name is "fifo" or
# "adaptive-<interval>-<target>", plus "+deadline" for clients that send
# X-Request-Timeout; CONFIGS may name others of that form.
CONFIGS = [base + suffix for suffix in ("", "+deadline") for base in (
    "fifo", "adaptive-100ms-20ms", "adaptive-500ms-100ms", "adaptive-1s-200ms", "adaptive-2s-500ms")]
DEFAULT_CONFIG = "adaptive-1s-200ms"  # sluice's own defaults (config/config.h)
DURATION_RE = r"\d+(?:ms|s)"


def config_of(name):
    """(queue mode, interval, target, send X-Request-Timeout), or None."""
    m = re.fullmatch(r"(fifo|adaptive-(%s)-(%s))(\+deadline)?" % (DURATION_RE, DURATION_RE), name)
    if not m:
        return None
    if m.group(1) == "fifo":
        return ("fifo", "500ms", "100ms", bool(m.group(4)))
    return ("adaptive", m.group(2), m.group(3), bool(m.group(4)))


# ---- Processes -------------------------------------------------------------

STARTED = []  # every Popen started here, stopped by stop_all()


def log(msg):
    print("[overload %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def spawn(argv, logfile):
    p = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    STARTED.append(p)
    return p


def stop(p, grace=5.0):
    """SIGTERM, then SIGKILL after `grace` seconds; by PID, then reaped."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in STARTED:
        STARTED.remove(p)


def stop_all():
    for p in list(STARTED):
        stop(p, grace=2.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(p, port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_backend(binary, workdir):
    path = os.path.join(workdir, "backend.log")
    with open(path, "w") as f:
        p = spawn([binary, "--listen", "127.0.0.1:0", "--threads", str(THREADS), "--queue", str(APP_QUEUE),
                   "--service-ms", str(SERVICE_MS), "--jitter-ms", str(JITTER_MS)], f)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        with open(path) as f:
            m = re.search(r"^listening on .*:(\d+)$", f.read(), re.M)
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    with open(path) as f:
        raise RuntimeError("sluice-legacy-backend did not start: " + f.read())


def sluice_config(port, admin_port, backend_port, cfg):
    mode, interval, target, _ = cfg
    return f"""listeners:
  - name: bench
    listen: "127.0.0.1:{port}"
    max_connections: 15000
routes:
  - name: all
    upstream: app
upstreams:
  app:
    servers:
      - {{ address: "127.0.0.1:{backend_port}", max_concurrent: {THREADS} }}
    queue: {{ max_length: 1000, timeout: 5s, mode: {mode}, interval: {interval}, target: {target} }}
admin:
  listen: "127.0.0.1:{admin_port}"
drain_timeout: 5s
logging:
  level: warn
  access_log: {{ path: "off" }}
"""


def start_sluice(binary, workdir, backend_port, name, cfg):
    # A port picked free can be taken before sluice binds it (other
    # engineers run things here too): try a few.
    for _ in range(5):
        port, admin_port = free_port(), free_port()
        conf = os.path.join(workdir, "sluice-%s.yaml" % name)
        with open(conf, "w") as f:
            f.write(sluice_config(port, admin_port, backend_port, cfg))
        with open(os.path.join(workdir, "sluice-%s.log" % name), "a") as f:
            p = spawn([binary, "--config", conf], f)
        if wait_listening(p, port) and wait_listening(p, admin_port):
            return p, port, admin_port
        stop(p)
    raise RuntimeError("sluice did not start; see %s" % os.path.join(workdir, "sluice-%s.log" % name))


# ---- Load generator --------------------------------------------------------


class Request(asyncio.Protocol):
    """One client: connects, sends one GET, waits up to its patience."""

    __slots__ = ("run", "patience", "t0", "t_first", "buf", "tr", "task", "timer", "done")

    def __init__(self, run, patience):
        self.run = run
        self.patience = patience
        self.t0 = 0.0
        self.t_first = None
        self.buf = b""
        self.tr = None
        self.task = None
        self.timer = None
        self.done = False

    def start(self, loop, port, deadline_header):
        self.t0 = loop.time()
        head = b"GET /work HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
        if deadline_header:
            head += b"X-Request-Timeout: %dms\r\n" % round(self.patience * 1000)
        self.timer = loop.call_at(self.t0 + self.patience, self.give_up)
        self.task = loop.create_task(self.connect(loop, port, head + b"\r\n"))

    async def connect(self, loop, port, request):
        try:
            await loop.create_connection(lambda: self, "127.0.0.1", port)
        except OSError as e:
            self.finish("error:" + type(e).__name__)
            return
        if self.done:  # gave up while connecting
            self.tr.close()
            return
        self.tr.write(request)

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        if self.done:
            return
        if self.t_first is None:
            self.t_first = self.run.loop.time()
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", self.buf[:end], re.I)
        if m and len(self.buf) - end - 4 >= int(m.group(1)):
            self.complete()

    def eof_received(self):
        if self.done:
            return
        if b"\r\n\r\n" in self.buf:
            self.complete()  # a response without Content-Length ends here
        else:
            self.finish("error:eof")

    def connection_lost(self, exc):
        if not self.done:
            self.finish("error:" + (type(exc).__name__ if exc else "closed"))

    def complete(self):
        try:
            status = int(self.buf[9:12])
        except ValueError:
            status = 0
        now = self.run.loop.time()
        if status == 200:
            self.finish("ok", now - self.t0)
        elif status == 503 and b"upstream busy" in self.buf:
            self.finish("shed", self.t_first - self.t0)
        else:
            self.finish("error:status%d" % status)
        self.tr.close()

    def give_up(self):
        if self.done:
            return
        self.finish("abandoned")
        if self.tr is not None:
            self.tr.close()  # a FIN, as a client whose timeout fired sends
        elif self.task is not None:
            self.task.cancel()

    def finish(self, outcome, seconds=None):
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.run.record(self, outcome, seconds)


class Run:
    """One load level against one sluice: schedule, outcomes, counters."""

    def __init__(self, loop, rate, seed, patience, deadline_header, window, tail):
        self.loop = loop
        self.rate = rate
        self.rng = random.Random(seed)
        self.patience = patience
        self.deadline_header = deadline_header
        self.window = window  # (start, end) offsets from the run's start
        self.tail = tail
        # From its making, not from when offer() first runs: the counter
        # snapshots at the window's edges are timed off it too.
        self.t_start = loop.time()
        self.measured = set()  # requests that arrived inside the window
        self.outcomes = {}
        self.ok_latency = []
        self.shed_ttfb = []
        self.lag = []
        self.pending = 0

    def record(self, req, outcome, seconds):
        self.pending -= 1
        if req not in self.measured:
            return
        self.measured.discard(req)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == "ok":
            self.ok_latency.append(seconds)
        elif outcome == "shed":
            self.shed_ttfb.append(seconds)

    async def offer(self, port):
        """Poisson arrivals until window end + tail; returns when all are done."""
        w0, w1 = self.t_start + self.window[0], self.t_start + self.window[1]
        end = w1 + self.tail
        t = self.t_start
        arrivals = 0
        while True:
            t += self.rng.expovariate(self.rate)
            patience = self.rng.uniform(*self.patience)
            if t >= end:
                break
            delay = t - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            req = Request(self, patience)
            if w0 <= t < w1:
                self.measured.add(req)
                self.lag.append(self.loop.time() - t)
                arrivals += 1
            self.pending += 1
            req.start(self.loop, port, self.deadline_header)
        while self.pending > 0:  # everyone answered or gave up (<= patience)
            await asyncio.sleep(0.05)
        return arrivals


async def http_get(port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path).encode())
    data = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    return data.partition(b"\r\n\r\n")[2].decode()


def sheds(metrics_text):
    out = {}
    for m in re.finditer(r'^sluice_upstream_shed_total\{[^}]*reason="(\w+)"\} (\d+)', metrics_text, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def percentile(xs, p):
    """NaN without samples: the report shows n/a."""
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1] if len(xs) >= 2 else float("nan")


async def measure(port, admin_port, backend_port, multiple, seed, args, deadline_header):
    loop = asyncio.get_running_loop()
    window = (args.warmup, args.warmup + args.duration)
    run = Run(loop, multiple * CAPACITY, seed, args.patience, deadline_header, window, args.patience[1])
    offer = loop.create_task(run.offer(port))
    snaps = []
    for edge in window:  # counters at the window's edges
        await asyncio.sleep(max(0.0, run.t_start + edge - loop.time()))
        stats, metrics = await asyncio.gather(http_get(backend_port, "/stats"), http_get(admin_port, "/metrics"))
        snaps.append((json.loads(stats)["served"], sheds(metrics)))
    arrivals = await offer

    n = sum(run.outcomes.values())
    served = (snaps[1][0] - snaps[0][0]) / args.duration
    ok = run.outcomes.get("ok", 0)
    result = {
        "offered": arrivals / args.duration,
        "goodput": ok / args.duration,
        "ok_pct": 100.0 * ok / n,
        "shed_pct": 100.0 * run.outcomes.get("shed", 0) / n,
        "abandoned_pct": 100.0 * run.outcomes.get("abandoned", 0) / n,
        "error_pct": 100.0 * sum(v for k, v in run.outcomes.items() if k.startswith("error")) / n,
        "p50_ms": 1000 * percentile(run.ok_latency, 50),
        "p99_ms": 1000 * percentile(run.ok_latency, 99),
        "served": served,
        "wasted": served - ok / args.duration,
        "shed_ttfb_p50_ms": 1000 * percentile(run.shed_ttfb, 50),
        "shed_ttfb_p99_ms": 1000 * percentile(run.shed_ttfb, 99),
        "lag_p99_ms": 1000 * percentile(run.lag, 99),
        "errors": {k: v for k, v in run.outcomes.items() if k.startswith("error")},
        "shed_reasons": {k: v - snaps[0][1].get(k, 0) for k, v in snaps[1][1].items() if v - snaps[0][1].get(k, 0)},
    }
    return result


async def wait_app_idle(backend_port, timeout=15.0):
    """Leftovers of the previous run must not eat this one's threads."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = json.loads(await http_get(backend_port, "/stats"))
        if s["busy"] == 0 and s["queued"] == 0:
            return
        await asyncio.sleep(0.1)
    log("warning: the app is still busy after %.0f s" % timeout)


# ---- Reporting -------------------------------------------------------------

COLUMNS = [
    ("offered/s", "offered", "%.0f"),
    ("goodput/s", "goodput", "%.0f"),
    ("200", "ok_pct", "%.0f%%"),
    ("503", "shed_pct", "%.0f%%"),
    ("abandoned", "abandoned_pct", "%.0f%%"),
    ("errors", "error_pct", "%.1f%%"),
    ("200 p50", "p50_ms", "%.0f ms"),
    ("200 p99", "p99_ms", "%.0f ms"),
    ("app served/s", "served", "%.0f"),
    ("app work wasted/s", "wasted", "%.0f"),
    ("503 TTFB p50", "shed_ttfb_p50_ms", "%.0f ms"),
    ("503 TTFB p99", "shed_ttfb_p99_ms", "%.0f ms"),
]


def median(values):
    values = [v for v in values if v == v]  # drop NaN (no sample)
    return statistics.median(values) if values else None


def label(name):
    mode, interval, target, deadline = config_of(name)
    s = "fifo" if mode == "fifo" else "adaptive %s / %s" % (interval, target)
    if name.replace("+deadline", "") == DEFAULT_CONFIG:
        s += " (default)"
    return s + (" + deadline" if deadline else "")


def table(results, loads, names):
    lines = ["| load | queue | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for load in loads:
        for name in names:
            runs = results.get((load, name), [])
            cells = []
            for _, key, fmt in COLUMNS:
                m = median([r[key] for r in runs])
                cells.append("n/a" if m is None else fmt % m)
            lines.append("| %gx | %s | %s |" % (load, label(name), " | ".join(cells)))
    return "\n".join(lines)


def anomalies(results):
    out = []
    for (load, name), runs in sorted(results.items()):
        for i, r in enumerate(runs):
            if r["errors"]:
                out.append("- %gx, %s, run %d: %s" % (load, label(name), i + 1, json.dumps(r["errors"])))
    return out


def report(results, args, loads, names, started, load_avg, elapsed, notes):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M).group(1)
    except (OSError, AttributeError):
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "none"
        dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"]).returncode != 0
    except OSError:
        commit, dirty = "none", False
    lag = median([r["lag_p99_ms"] for runs in results.values() for r in runs])
    parts = [
        "Run %s: %d round(s), %g s measured after %g s of load per run, %.0f min in all; medians over rounds%s."
        % (started.strftime("%Y-%m-%d %H:%M UTC"), args.rounds, args.duration, args.warmup, elapsed / 60,
           " (of two: their mean)" if args.rounds == 2 else ""),
        "",
        "Machine: %d CPUs, %s, Linux %s, Python %s. Load average when the run started: %s (well above 0: "
        "other work competed for the CPUs). Generator, sluice and app share them; how late the generator "
        "started its requests, p99 of a run, median over runs: %s." % (os.cpu_count(), cpu, platform.release(), platform.python_version(),
                                          load_avg, "n/a" if lag is None else "%.1f ms" % lag),
        "",
        "sluice commit %s%s. Command: `%s`" % (commit, " + local changes" if dirty else "", args.command),
        "",
        "App: `sluice-legacy-backend --threads %d --queue %d --service-ms %d --jitter-ms %d` "
        "(%d threads, %d-%d ms a request: capacity %.0f req/s). sluice: `max_concurrent: %d`, "
        "`queue: { max_length: 1000, timeout: 5s }`, mode/interval/target as in the table, access log off. "
        "Clients: Poisson arrivals at the load x capacity, one connection each (`Connection: close`), "
        "patience uniform %g-%g s, after which the client closes its socket; `+ deadline` clients also send "
        "`X-Request-Timeout: <their patience>`."
        % (THREADS, APP_QUEUE, SERVICE_MS, JITTER_MS, THREADS, SERVICE_MS, SERVICE_MS + JITTER_MS, CAPACITY,
           THREADS, args.patience[0], args.patience[1]),
        "",
        table(results, loads, names),
    ]
    for n in notes:
        parts += ["", n]
    bad = anomalies(results)
    if bad:
        parts += ["", "Errors (neither a 200, a sluice 503 nor an abandonment):", ""] + bad
    return "\n".join(parts) + "\n"


def write_report(path, text):
    begin, end = "<!-- overload:begin -->", "<!-- overload:end -->"
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if begin not in old or end not in old:
        old += ("# Queue discipline under overload\n\nGenerated by `python3 tests/bench/overload.py`; "
                "see tests/bench/README.md.\n\n%s\n%s\n" % (begin, end))
    head, _, rest = old.partition(begin)
    _, _, tail = rest.partition(end)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + text + end + tail)
    log("results written to %s" % path)


# ---- Main ------------------------------------------------------------------


def parse_args():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=int(env("ROUNDS", "2")))
    p.add_argument("--duration", type=float, default=float(env("DURATION", "4")))
    p.add_argument("--warmup", type=float, default=float(env("WARMUP", "3")))
    p.add_argument("--loads", default=env("LOADS", "0.8 1.5 3"))
    p.add_argument("--configs", default=env("CONFIGS", " ".join(CONFIGS)))
    p.add_argument("--patience", default=env("PATIENCE", "0.5 2"))
    p.add_argument("--seed", type=int, default=int(env("SEED", "1")))
    p.add_argument("--max-lag-ms", type=float, default=float(env("MAX_LAG_MS", "25")))
    p.add_argument("--retries", type=int, default=int(env("RETRIES", "2")))
    p.add_argument("--build-dir", default=env("BUILD_DIR", os.path.join(ROOT, "build")))
    p.add_argument("--skip-build", action="store_true", default=env("SKIP_BUILD", "0") == "1")
    p.add_argument("--sluice-bin", default=env("SLUICE_BIN"))
    p.add_argument("--backend-bin", default=env("BACKEND_BIN"))
    p.add_argument("--out", default=env("OUT", os.path.join(ROOT, "docs", "overload.md")))
    p.add_argument("--raw", default=env("RAW"))
    args = p.parse_args()
    args.loads = [float(x) for x in args.loads.split()]
    args.configs = args.configs.split()
    args.patience = tuple(float(x) for x in args.patience.split())
    unknown = [c for c in args.configs if config_of(c) is None]
    if unknown or args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or len(args.patience) != 2 \
            or not 0 < args.patience[0] <= args.patience[1]:
        p.error("bad arguments (configs not of the form fifo[+deadline] or "
                "adaptive-<interval>-<target>[+deadline]: %s)" % unknown)
    args.sluice_bin = args.sluice_bin or os.path.join(args.build_dir, "cmd", "sluice")
    args.backend_bin = args.backend_bin or os.path.join(args.build_dir, "tests", "support", "sluice-legacy-backend")
    env_set = " ".join("%s='%s'" % (k, os.environ[k]) for k in ("ROUNDS", "DURATION", "WARMUP", "LOADS", "CONFIGS",
                                                               "PATIENCE", "SEED", "MAX_LAG_MS", "RETRIES") if k in os.environ)
    args.command = ((env_set + " ") if env_set else "") + "python3 tests/bench/overload.py" + \
        ("".join(" " + a for a in sys.argv[1:]))
    return args


def build(args):
    if args.skip_build:
        return
    log("building sluice and sluice-legacy-backend in %s" % args.build_dir)
    subprocess.run(["cmake", "-S", ROOT, "-B", args.build_dir, "-DCMAKE_BUILD_TYPE=Release"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", args.build_dir, "-j2", "--target", "sluice", "sluice-legacy-backend"],
                   check=True, stdout=sys.stderr)


async def bench(args, workdir, notes):
    results = {}
    repeated = 0
    dropped = []
    backend, backend_port = start_backend(args.backend_bin, workdir)
    log("app on port %d (capacity %.0f req/s)" % (backend_port, CAPACITY))
    names = args.configs
    per_run = args.warmup + args.duration + args.patience[1] + 1.0
    log("about %.0f min: %d rounds x %d loads x %d configurations, %.0f s each"
        % (args.rounds * len(args.loads) * len(names) * per_run / 60, args.rounds, len(args.loads), len(names),
           per_run))
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]  # rotated: no config always first
        for li, load in enumerate(args.loads):
            seed = args.seed * 1000003 + rnd * 101 + li
            for name in order:
                for attempt in range(args.retries + 1):
                    await wait_app_idle(backend_port)
                    sluice, port, admin_port = start_sluice(args.sluice_bin, workdir, backend_port, name,
                                                            config_of(name))
                    try:
                        r = await measure(port, admin_port, backend_port, load, seed, args, config_of(name)[3])
                    except BaseException:
                        stop(sluice, grace=1.0)  # its clients are still connected: no drain
                        raise
                    stop(sluice)
                    if backend.poll() is not None:
                        raise RuntimeError("the app died; see %s/backend.log" % workdir)
                    # A late generator bunches arrivals and starves sluice
                    # alike: the machine stalled, not the discipline.
                    if r["lag_p99_ms"] <= args.max_lag_ms:
                        break
                    log("round %d, %gx, %s: generator p99 lag %.0f ms, %s"
                        % (rnd + 1, load, name, r["lag_p99_ms"],
                           "repeating" if attempt < args.retries else "left out"))
                    repeated += attempt < args.retries
                else:
                    dropped.append("%gx, %s, round %d (%.0f ms)" % (load, label(name), rnd + 1, r["lag_p99_ms"]))
                    results.setdefault((load, name), [])
                    continue
                results.setdefault((load, name), []).append(r)
                log("round %d, %gx, %-32s goodput %5.0f/s  200 %3.0f%%  503 %3.0f%%  abandoned %3.0f%%  "
                    "p99 %5.0f ms  wasted %4.0f/s%s" % (rnd + 1, load, name, r["goodput"], r["ok_pct"], r["shed_pct"],
                                                        r["abandoned_pct"], r["p99_ms"], r["wasted"],
                                                        "  errors %s" % r["errors"] if r["errors"] else ""))
    stop(backend)
    if repeated or dropped:
        notes.append("%d run(s) were repeated because the generator fell more than %g ms behind its schedule "
                     "(p99: the machine stalled)%s." % (repeated, args.max_lag_ms, "; still late after %d repeats, "
                                                        "left out of the medians: %s" % (args.retries, "; ".join(dropped))
                                                        if dropped else ""))
    return results


def main():
    args = parse_args()
    # ~1,000 client sockets at once at 3x, and as many in sluice.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # SIGTERM unwinds like Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.datetime.now(datetime.timezone.utc)
    load_avg = " ".join(open("/proc/loadavg").read().split()[:3])
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="sluice-overload.")
    keep = False
    try:
        build(args)
        for b in (args.sluice_bin, args.backend_bin):
            if not os.access(b, os.X_OK):
                sys.exit("no executable at %s (build it, or set SLUICE_BIN / BACKEND_BIN)" % b)
        notes = []
        results = asyncio.run(bench(args, workdir, notes))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception:
        keep = True  # the processes' logs say why
        log("failed; logs kept in %s" % workdir)
        raise
    finally:
        stop_all()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, args, args.loads, args.configs, started, load_avg, time.monotonic() - t0, notes)
    print(text)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({"%gx %s" % k: v for k, v in results.items()}, f, indent=1)
    write_report(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
