// Fixture for the HTTP/1.1 data-path integration tests: the real `sluice`
// binary in front of real `sluice-backend` processes, all on 127.0.0.1 with
// ephemeral ports, plus raw-socket helpers for requests the friendly client
// would never send.
//
// Config templates are YAML with placeholders replaced before sluice starts:
//   {B0}, {B1}, ...  the port of backend 0, 1, ...
//   {CLOSED}         a port on 127.0.0.1 where nothing listens
//   {S0}, {S1}, ...  the port of scripted upstream 0, 1, ... (see ScriptedUpstream)
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_file.h"

namespace sluice::itest {

using sluice::test::Headers;
using sluice::test::HttpResponse;
using sluice::test::Process;
using sluice::test::TempFile;
using sluice::test::UniqueFd;

// What the backend's /stats reports.
struct BackendStats {
  int64_t requests = -1;
  int64_t connections = -1;
  int64_t active = -1;
  int64_t max_active = -1;
  int64_t max_concurrent = -1;
};

// One `sluice-backend --listen 127.0.0.1:0` process.
class Backend {
 public:
  explicit Backend(std::vector<std::string> extra_args = {});
  uint16_t port() const { return port_; }
  Process& process() { return *proc_; }

  // GET /stats, straight to the backend (not through sluice; /stats and
  // /stats/reset are not counted as requests by the backend). `connections`
  // leaves out the connection of the /stats request itself. Fails the test
  // on error.
  BackendStats stats();
  void reset_stats();

 private:
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
};

// One `sluice --config FILE` process, started and waited for.
class Sluice {
 public:
  // Writes `yaml` to a temp file, starts sluice and waits (10 s at most)
  // for "listener web listening on 127.0.0.1:PORT".
  explicit Sluice(const std::string& yaml, const std::string& listener = "web");
  uint16_t port() const { return port_; }
  Process& process() { return *proc_; }
  pid_t pid() const { return proc_->pid(); }
  // VmRSS of the process in KiB, -1 if unreadable.
  int64_t rss_kib() const;
  // Replaces the config file atomically (write + rename), as an operator's
  // editor or deployment would before `systemctl reload`.
  void rewrite_config(const std::string& yaml);
  // Sends SIGHUP and waits (5 s at most) until the output holds `nth`
  // reload outcome lines ("reload: ..."): a plain wait_for_line would find
  // an earlier reload's line again. False if they did not come.
  bool reload(int nth);

 private:
  std::unique_ptr<TempFile> config_;
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
};

// A real TCP server inside the test process, for upstream behaviour the
// backend cannot produce (1xx responses, close-delimited bodies, two
// Set-Cookie headers, closing without an answer). Each accepted connection
// runs `handler(fd)` on its own thread; every request head read through
// read_head() is recorded. Stopped and joined by the destructor.
class ScriptedUpstream {
 public:
  using Handler = std::function<void(ScriptedUpstream& self, int fd)>;
  explicit ScriptedUpstream(Handler handler);
  ~ScriptedUpstream();
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  uint16_t port() const { return port_; }
  bool stopping() const { return stop_.load(); }
  int connections() const { return connections_.load(); }
  std::vector<std::string> heads() const;

  // Reads one request head (through the blank line) plus `Content-Length`
  // body bytes if it announced any; records the head. Empty on EOF/timeout.
  std::string read_request(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  void accept_loop();

  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;  // guards workers_
  std::vector<std::thread> workers_;
  std::vector<std::string> heads_;
  mutable std::mutex heads_mu_;
};

// Which backends and scripted upstreams a config refers to.
struct Setup {
  int backends = 1;
  std::vector<std::string> backend_args;  // extra args for every backend
};

// Backends started first, then sluice with the template filled in.
class ProxyFixture {
 public:
  // `scripted` ports are substituted as {S0}, {S1}, ...
  explicit ProxyFixture(const std::string& yaml_template, Setup setup = {},
                        std::vector<uint16_t> scripted = {});
  uint16_t port() const { return sluice_->port(); }
  Sluice& sluice() { return *sluice_; }
  Backend& backend(size_t i = 0) { return *backends_.at(i); }
  const std::string& yaml() const { return yaml_; }

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
  std::string yaml_;
  std::unique_ptr<Sluice> sluice_;
};

// A config with listener "web" (extra keys in `listener_extra`, written as
// YAML lines indented by 4 spaces), one catch-all route to upstream "app"
// with the servers `servers` (e.g. {"{B0}"} or {"{CLOSED}", "{B0}"}), and
// extra upstream keys in `upstream_extra` (indented by 4 spaces).
std::string simple_config(const std::string& listener_extra = "",
                          const std::string& upstream_extra = "",
                          const std::vector<std::string>& servers = {"{B0}"});

// Replaces every `{key}` of `vars` in `tmpl`.
std::string fill(std::string tmpl, const std::map<std::string, std::string>& vars);

// A port on 127.0.0.1 that was free a moment ago and has no listener.
uint16_t closed_port();

// The admin endpoint's port, from sluice's "admin listening on" line (a
// config with `admin: { listen: "127.0.0.1:0" }`); waits up to 5 s.
uint16_t admin_port(Process& sluice);
inline uint16_t admin_port(Sluice& s) { return admin_port(s.process()); }
// The value of one sample line of a /metrics text, e.g.
// `name{label="v"}`; -1 when absent.
double metric_sample(const std::string& metrics, const std::string& series);

// --- raw sockets ----------------------------------------------------------------

// Connects to 127.0.0.1:port; fails the test if it cannot. Catch2 (v2)
// assertions are not thread-safe: call this from the test's own thread only.
UniqueFd connect_or_fail(uint16_t port);

// Receives up to `max` bytes; "" on EOF, error or timeout (then *eof says
// whether the peer closed).
std::string recv_some(int fd, size_t max, std::chrono::milliseconds timeout, bool* eof = nullptr);

// Sends `bytes` on a fresh connection and reads everything until the peer
// closes or `timeout`.
struct RawResult {
  std::string bytes;  // everything received
  bool closed = false;
  int status = 0;  // status code of the first response line, 0 if none
};
RawResult raw_exchange(uint16_t port, std::string_view bytes,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Status code of an "HTTP/1.x NNN ..." line at the start of `bytes`; 0 if none.
int status_of(std::string_view bytes);

// Number of times `needle` occurs in `hay`.
size_t count_of(std::string_view hay, std::string_view needle);

// The body of a /headers response split at CRLF: the request line first.
std::vector<std::string> head_lines(std::string_view head);

// Whether the head (as echoed by /headers) has a header named `name`
// (case-insensitive).
bool head_has(std::string_view head, std::string_view name);
// Values of every `name` header in the echoed head, in order.
std::vector<std::string> head_values(std::string_view head, std::string_view name);

// A chunked encoding of `body` with chunks of at most `chunk` bytes.
std::string chunked(std::string_view body, size_t chunk = 64 * 1024);

// Runs `n` copies of `fn(i)` on threads at once and joins them. `fn` must not
// use Catch2's macros (INFO, CHECK, REQUIRE, or helpers that do, such as
// connect_or_fail): they are not thread-safe, and concurrent use corrupts
// the heap. Record results and assert after the join.
void run_parallel(int n, const std::function<void(int)>& fn);

// --- thread-per-request app ------------------------------------------------------

// What sluice-legacy-backend's /stats reports (see tests/support/legacy_backend.h).
struct LegacyBackendStats {
  int64_t served = -1;      // requests its worker threads answered
  int64_t rejected = -1;    // its own 503s (request queue full)
  int64_t busy = -1;        // worker threads holding a connection now
  int64_t peak_busy = -1;   // highest `busy` since start or reset
  int64_t queued = -1;      // connections waiting for a thread now
  int64_t peak_queue = -1;  // highest `queued` since start or reset
};

// One `sluice-legacy-backend --listen 127.0.0.1:0` process: a fixed pool of
// threads (`--threads T`), a bounded queue (`--queue Q`), a service time
// (`--service-ms S`, `--jitter-ms J`), its own 503 when the queue is full.
class LegacyBackend {
 public:
  explicit LegacyBackend(std::vector<std::string> extra_args = {});
  uint16_t port() const { return port_; }
  Process& process() { return *proc_; }

  // GET /stats straight to the app; answered by its poller thread, so it
  // works while every worker is busy and is not counted. Fails the test on
  // error.
  LegacyBackendStats stats();
  // Zeroes served and rejected; the peaks restart from the current values.
  void reset_stats();
  // A worker updates its counters just after its last write, so a client
  // holding a response may see them a moment early. Waits (up to `limit`)
  // for no thread busy and nothing queued; false on timeout.
  bool wait_idle(std::chrono::milliseconds limit = std::chrono::seconds(2));

 private:
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
};

// --- resources of a process (fault, limit and soak tests) -----------------------

// Open file descriptors of `pid` (entries of /proc/<pid>/fd); -1 if unreadable.
int fd_count(pid_t pid);
// What those descriptors are ("socket:[123]", "/dev/null", ...), one a line,
// for failure messages.
std::string fd_listing(pid_t pid);
// CPU time (user + system) `pid` has used so far, in milliseconds; -1 if unreadable.
int64_t cpu_time_ms(pid_t pid);
// Waits up to `limit` for fd_count(pid) to equal `expected`; returns the last count.
int wait_fds(pid_t pid, int expected, std::chrono::milliseconds limit);
// Closes `fd` with a TCP reset (SO_LINGER 0) instead of a FIN.
void reset_close(UniqueFd& fd);

}  // namespace sluice::itest
