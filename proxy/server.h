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
#include "proxy/metrics.h"
#include "proxy/routing.h"
#include "proxy/upstream_link.h"
#include "proxy/upstream_pool.h"
#include "proxy/waiter_inbox.h"

namespace sluice::proxy {

class ClientConnection;

class Server {
 public:
  Server(uv_loop_t* loop, config::ConfigPtr cfg);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener and starts the workers. On error nothing listens.
  Result<bool> start();

  // Swaps in a new configuration snapshot: new requests use it, requests
  // in flight finish with the one they started with. Listeners are kept
  // (same address), bound (new) or closed (gone); upstream pools are
  // reconfigured in place (servers that stay keep their state). On error
  // (a new listener cannot bind, the access log cannot open) nothing
  // changes. `log` is the new config's access log, opened off the loop
  // (opening a file blocks); it is used only if its path or format changed.
  Result<bool> reload(config::ConfigPtr next, Result<std::unique_ptr<AccessLog>> log);

  // Stops accepting, lets in-flight requests finish (closing idle
  // keep-alive connections at once), and calls `done` when the last
  // connection has closed or `timeout` has passed.
  void shutdown(config::Duration timeout, std::function<void()> done);
  bool draining() const { return draining_; }

  // For connections.
  uv_loop_t* loop() const { return loop_; }
  const config::ConfigPtr& config() const { return cfg_; }
  UpstreamLink* link(const std::string& name);
  bool submit(RouteJob& job);
  DeadlineTimers& timers() { return timers_; }  // client connection timeouts
  AccessLog& access_log() { return *access_log_; }
  Metrics& metrics() { return metrics_; }
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
  Result<std::unique_ptr<Listener>> bind(const config::Listener& lc);
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

  std::vector<Slot> slots_;
  std::vector<ConnId> free_slots_;
  size_t live_ = 0;

  bool draining_ = false;
  std::function<void()> on_drained_;
  UvHandle<uv_timer_t> drain_timer_;
};

}  // namespace sluice::proxy
