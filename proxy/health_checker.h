// Active HTTP health checks for the servers of one upstream, on the loop
// thread. Each server gets its own probe cycle: connect, send
// `GET <path>` with `Connection: close`, read up to the status line, close.
// A 2xx or 3xx within `timeout` (connect and response together) is a
// success; anything else (refused, reset, timeout, 4xx/5xx, not HTTP) is a
// failure. `unhealthy_after` consecutive failures take a healthy server
// out, `healthy_after` consecutive successes bring it back; each flip is
// reported once through HealthListener.
//
// Servers start healthy (as in nginx without `mandatory`): a fresh start or
// a reload serves at once instead of refusing traffic for
// healthy_after * interval, and a server that is really down still fails
// its requests fast (connect refused) until the checks take it out. A
// caller that already knows better (a reload keeping a server) passes the
// states it had.
//
// Probes are spread: server i of n first probes i/n of an interval after
// start, then every `interval` from the start of its previous probe (or as
// soon as the previous one has closed, if it took longer), so n servers
// never all probe at once. A probe allocates nothing: the request bytes are
// built once per server, reads go to one buffer shared by every server (a
// read is parsed before the next one), and only the status line is
// examined, so a response of any size costs at most a few KiB read.
//
// One close path, like UpstreamConnection: stop() closes every handle and
// the object deletes itself once the last close callback has run, so the
// owner never frees it and never touches it after stop().
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::proxy {

// Loop thread only.
class HealthListener {
 public:
  // Server `server` changed state. `reason` says why: the failure that
  // completed the run of failures, or the status of the success that
  // completed the run of successes. Valid only during the call. The
  // listener may call stop() from here.
  virtual void on_health_change(size_t server, bool healthy, const char* reason) = 0;

 protected:
  ~HealthListener() = default;
};

class HealthChecker {
 public:
  // Starts the probe cycles. `initial_healthy`: the state each server
  // starts in (empty: all healthy; otherwise one entry per server).
  // `listener` must stay valid until stop().
  static HealthChecker* start(uv_loop_t* loop, const config::HealthCheck& cfg,
                              const std::vector<config::Server>& servers,
                              HealthListener* listener,
                              const std::vector<bool>& initial_healthy = {});

  // Closes every handle, aborting probes in flight; no listener call
  // follows. The object frees itself once libuv is done with its handles.
  // Idempotent.
  void stop();

  size_t size() const { return targets_.size(); }
  bool healthy(size_t server) const { return targets_[server]->healthy; }
  // Why the most recent failed probe failed; empty if none has failed yet.
  const std::string& last_failure(size_t server) const { return targets_[server]->last_failure; }
  // Probes of this server that have concluded (success or failure).
  uint64_t probes(size_t server) const { return targets_[server]->probes; }
  const config::HealthCheck& config() const { return cfg_; }

 private:
  enum class Phase : uint8_t { Waiting, Connecting, Awaiting, Closing, Stopped };

  // One server's probe cycle. Its handles and requests live here, so a
  // target must stay put until their close callbacks: targets are created
  // once and never moved.
  struct Target {
    HealthChecker* owner = nullptr;
    size_t index = 0;
    config::SocketAddress address;
    std::string request;  // the whole probe request, built once

    uv_timer_t timer{};  // next probe while Waiting, the deadline while probing
    uv_tcp_t tcp{};      // initialised per probe, closed before the next
    uv_connect_t connect_req{};
    uv_write_t write_req{};
    llhttp_t parser{};

    Phase phase = Phase::Waiting;
    bool tcp_open = false;  // tcp initialised and its close callback not yet run
    uint64_t started = 0;   // loop time the current or last probe began
    size_t read_bytes = 0;  // of the current probe, before a final status

    bool healthy = true;
    uint32_t successes = 0;  // consecutive, saturating at healthy_after
    uint32_t failures = 0;   // consecutive, saturating at unhealthy_after
    uint64_t probes = 0;
    std::string last_failure;
  };

  HealthChecker(uv_loop_t* loop, const config::HealthCheck& cfg,
                const std::vector<config::Server>& servers, HealthListener* listener,
                const std::vector<bool>& initial_healthy);
  ~HealthChecker() = default;
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void begin_probe(Target& t);
  void succeed(Target& t, int status);
  void fail(Target& t, const char* what, int uv_err = 0);
  void end_probe(Target& t);  // closes the socket; the next probe follows its close
  void schedule_next(Target& t);
  void closed_one();

  static void on_timer(uv_timer_t* timer);
  static void on_connect(uv_connect_t* req, int status);
  static void on_written(uv_write_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_tcp_closed(uv_handle_t* h);
  static void on_timer_closed(uv_handle_t* h);
  static int on_status_complete(llhttp_t* p);
  static const llhttp_settings_t& parser_settings();

  uv_loop_t* loop_;
  config::HealthCheck cfg_;
  HealthListener* listener_;
  std::vector<std::unique_ptr<Target>> targets_;
  bool stopping_ = false;
  size_t open_handles_ = 0;  // timers plus open sockets; deleted at 0 once stopping
  std::array<char, 4096> read_buf_{};
};

}  // namespace sluice::proxy
