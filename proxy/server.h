// The proxy as a whole, on the loop thread: listeners, the table of client
// connections, the upstream pools and the routing worker pool. main() owns
// one Server; every connection and pool is owned here and nowhere else.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "core/busy_poll.h"
#include "core/deadline_timers.h"
#include "core/result.h"
#include "core/uv_handle.h"
#include "core/worker_pool.h"
#include "proxy/access_log.h"
#include "proxy/admin.h"
#include "proxy/listener.h"
#include "proxy/loop_stats.h"
#include "proxy/metrics.h"
#include "proxy/routing.h"
#include "proxy/upstream_link.h"
#include "proxy/upstream_pool.h"
#include "proxy/waiter_inbox.h"

namespace sluice::proxy {

class ClientConnection;

// What the other loops take from the first (io_threads): its upstream
// pools, and where its listeners are bound with what they count together.
struct SharedState {
  std::unordered_map<std::string, std::shared_ptr<UpstreamPool>> pools;  // by upstream
  struct Seat {
    sockaddr_storage at;
    std::shared_ptr<ListenerShare> share;
  };
  std::unordered_map<std::string, Seat> listeners;  // by listener name
};

class Server {
 public:
  // `home`: null for the first loop, which creates the upstream pools, the
  // admin listener and the health checks; for the others, that loop's
  // SharedState.
  Server(uv_loop_t* loop, config::ConfigPtr cfg, const SharedState* home = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener and starts the workers. On error nothing listens.
  // `home` as for the constructor.
  Result<bool> start(const SharedState* home = nullptr);
  // For the other loops, after start() or reload().
  SharedState shared_state() const;

  // Swaps in a new configuration snapshot: new requests use it, requests
  // in flight finish with the one they started with. Listeners are kept
  // (same address), bound (new) or closed (gone); upstream pools are
  // reconfigured in place (servers that stay keep their state). On error
  // (a new listener cannot bind, the access log cannot open) nothing
  // changes. `log` is the new config's access log, opened off the loop
  // (opening a file blocks); it is used only if its path or format changed.
  // The other loops reload after the first, with its new SharedState as
  // `home`: they use its pools (which it has reconfigured) and bind new
  // listeners where it did.
  Result<bool> reload(config::ConfigPtr next, Result<std::unique_ptr<AccessLog>> log,
                      const SharedState* home = nullptr);

  // Stops accepting, lets in-flight requests finish (closing idle
  // keep-alive connections at once), and calls `done` when the last
  // connection has closed or `timeout` has passed.
  void shutdown(config::Duration timeout, std::function<void()> done);
  bool draining() const { return draining_; }
  // Once every loop has drained: the upstream pools' health checks and
  // timers stop (they are the first loop's, and would keep it running).
  void stop_upstreams();

  // For connections.
  uv_loop_t* loop() const { return loop_; }
  const config::ConfigPtr& config() const { return cfg_; }
  UpstreamLink* link(const std::string& name);
  bool submit(RouteJob& job);
  DeadlineTimers& timers() { return timers_; }  // client connection timeouts
  AccessLog& access_log() { return *access_log_; }
  Metrics& metrics() { return metrics_; }
  // This loop's counters, copied.
  LoopStats stats() const;
  // Every loop's counters, added up; `done` runs on this loop, at once
  // with one loop, or once each other loop has answered.
  using StatsCallback = std::function<void(const LoopStats&)>;
  void collect_stats(StatsCallback done);
  // Set by the loop group: how collect_stats() reaches the other loops.
  void set_collector(std::function<void(StatsCallback)> collector) {
    collector_ = std::move(collector);
  }
  // Which loop of the group this is (0: the first), for its counters.
  void set_loop_index(unsigned i) { loop_index_ = i; }
  WorkerPoolStats worker_stats() const { return workers_ ? workers_->stats() : WorkerPoolStats{}; }
  const BusyPoll& busy_poll() const { return busy_poll_; }
  const std::unordered_map<std::string, std::unique_ptr<UpstreamLink>>& links() const {
    return links_;
  }
  // SIGUSR1: log files are reopened (logrotate has moved them).
  void reopen_logs() { access_log_->reopen(); }
  void release(ClientConnection* conn);  // its handles have closed
  // max_connections_per_ip, once the connection in slot `id` knows its
  // peer: false if it must be closed at once. Otherwise *counted says
  // whether it was counted under *key, which the connection keeps and
  // gives back through counted_peer() when it is released.
  bool admit(ConnId id, const sockaddr_storage& peer, PeerKey* key, bool* counted);

  size_t connection_count() const { return live_; }
  const std::vector<std::unique_ptr<Listener>>& listeners() const { return listeners_; }

 private:
  // 24 bytes per connection; the peer address is the connection's own.
  struct Slot {
    ClientConnection* conn = nullptr;
    Listener* listener = nullptr;
    uint32_t gen = 0;
  };

  void on_accept(Listener& l, int fd, const sockaddr_storage& peer);
  Result<std::unique_ptr<Listener>> bind(const config::Listener& lc, const SharedState* home);
  std::unique_ptr<UpstreamLink> make_link(const config::Upstream& up, const SharedState* home);
  void on_routed(RouteResult&& r);
  void maybe_finish_shutdown();
  void finish_shutdown();

  uv_loop_t* loop_;
  config::ConfigPtr cfg_;
  BusyPoll busy_poll_;
  DeadlineTimers timers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Closed by a reload but still counted by their connections' slots.
  std::vector<std::unique_ptr<Listener>> retired_listeners_;
  // Where decisions about this loop's queued requests arrive.
  std::unique_ptr<WaiterInbox> inbox_;
  // By upstream name: this loop's side of each upstream, holding the pool.
  std::unordered_map<std::string, std::unique_ptr<UpstreamLink>> links_;
  // Of upstreams a reload removed; kept until their last request has finished.
  std::vector<std::unique_ptr<UpstreamLink>> retired_links_;
  std::unique_ptr<WorkerPool<RouteJob, RouteResult>> workers_;
  std::unique_ptr<AccessLog> access_log_;
  std::vector<std::unique_ptr<AccessLog>> retired_logs_;  // replaced by reloads, draining
  std::unique_ptr<AdminServer> admin_;
  Metrics metrics_;
  std::function<void(StatsCallback)> collector_;
  unsigned loop_index_ = 0;
  // Several loops share each listener's address: from the start-up config,
  // as io_threads changes only with a restart.
  const bool reuse_port_;

  std::vector<Slot> slots_;
  std::vector<ConnId> free_slots_;
  size_t live_ = 0;

  bool draining_ = false;
  std::function<void()> on_drained_;
  UvHandle<uv_timer_t> drain_timer_;
};

}  // namespace sluice::proxy
