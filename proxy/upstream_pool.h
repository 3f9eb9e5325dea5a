// Everything sluice knows about one upstream: its servers (each with the
// one authoritative in-flight counter, loop thread only), the waiting room
// for requests that find every server at its limit, active health checks
// and the retry budget. A pool lives as long as its upstream's name is in
// the config: a reload reconfigures it in place, so servers that stay keep
// their counts, limits, health and idle connections, and queued requests
// keep their places.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "config/config.h"
#include "core/deadline_timers.h"
#include "core/uv_handle.h"
#include "proxy/balancer.h"
#include "proxy/health_checker.h"
#include "proxy/request_queue.h"
#include "proxy/upstream_server.h"

namespace sluice {
class BusyPoll;
}

namespace sluice::proxy {

class RetryBudget;
class UpstreamConnection;

// How a request's use of a server ended, for limits and health.
enum class Outcome : uint8_t {
  Success,   // a response the app meant (any status but the ones below)
  Overload,  // the app said it is busy: 503, or refused while it had our requests
  Failure,   // connect timeout, reset, garbage, 5xx other than 503
  Neutral,   // nothing learned (the client left, a retry elsewhere)
};

class UpstreamPool final : private HealthListener {
 public:
  UpstreamPool(uv_loop_t* loop, const config::Upstream& cfg);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  const config::Upstream& config() const { return cfg_; }
  uv_loop_t* loop() const { return loop_; }
  // Kicked when a request has been written to one of this pool's servers.
  void set_busy_poll(BusyPoll* busy_poll) { busy_poll_ = busy_poll; }
  BusyPoll* busy_poll() const { return busy_poll_; }
  // Its connections' connect, response and keep-alive timeouts: a few
  // durations, re-armed on every read, so FIFO lists rather than libuv's
  // timer heap.
  DeadlineTimers& timers() { return conn_timers_; }

  // Reload: new settings and server list. Servers whose address stays keep
  // their state; new ones start with slow start; dropped ones leave the
  // rotation and are freed once their last request has finished.
  void reconfigure(const config::Upstream& cfg);
  // No request in flight or waiting: a pool whose upstream was removed can go.
  bool quiet() const;

  // The servers in config order.
  size_t size() const { return servers_.size(); }
  const UpstreamServer& server(size_t i) const { return *servers_[i]; }
  uint32_t in_flight(size_t i) const { return servers_[i]->in_flight(); }

  // Picks a server with a free slot and takes the slot.
  UpstreamServer* acquire(TriedSet tried);
  // Gives the slot back, learns from `outcome`, and serves the queue.
  // `rtt_ns` and `in_flight_at_start` describe the request (for Success).
  void release(UpstreamServer* s, Outcome outcome, uint64_t rtt_ns = 0,
               uint32_t in_flight_at_start = 0);
  // Every server is out of use (ejected or failing its checks).
  bool all_down() const;
  size_t healthy_count() const;

  // Keep-alive connections.
  UpstreamConnection* take_idle(UpstreamServer* s);
  // Returns false when the pool is full: the caller closes the connection.
  bool put_idle(UpstreamConnection* conn);
  void forget_idle(UpstreamConnection* conn);  // it is closing
  size_t idle_count() const { return idle_total_; }
  void close_idle();  // shutdown

  // Waiting room. admit() queues the waiter, or says why it cannot wait:
  // the queue is full (and holds nobody of a lower class), or the wait it
  // predicts exceeds the request's budget (`budget_ns`, 0 = the queue
  // timeout). A waiter evicted for a higher class hears on_shed().
  std::optional<ShedReason> admit(QueueWaiter* w, config::Priority p, uint64_t budget_ns);
  void leave(QueueWaiter* w) { queue_.remove(w); }
  size_t queue_length() const { return queue_.size(); }
  // Seconds a shed client should wait before trying again: the time the
  // queue takes to drain at the rate it has been draining, at least 1.
  uint32_t retry_after() const;

  // Retry budget: every request deposits, every retry withdraws.
  void count_request();
  bool allow_retry();
  uint64_t retry_budget_available();  // retries allowed now, one after another

  // Observed, for admission and the admin page.
  uint64_t service_time_ns() const { return service_ewma_ns_; }
  double drain_per_second() const { return drain_rate_; }

 private:
  std::span<const ServerLoad> snapshot();
  void serve_queue();
  void housekeeping();
  void ensure_timer();
  void start_checks();
  void stop_checks();
  UpstreamServer* find(const config::SocketAddress& a);
  void on_health_change(size_t server, bool healthy, const char* reason) override;
  static void on_timer(uv_timer_t* t);

  uv_loop_t* loop_;
  BusyPoll* busy_poll_ = nullptr;
  // Before the connections' containers below: destroyed after them.
  DeadlineTimers conn_timers_;
  config::Upstream cfg_;
  std::vector<std::unique_ptr<UpstreamServer>> servers_;  // config order
  std::vector<std::unique_ptr<UpstreamServer>> retired_;  // dropped, still busy
  // The balancer's view, copied from servers_ before each pick: a few
  // bytes per server, cheaper than keeping two copies of the counts in step.
  std::vector<ServerLoad> view_;
  std::unique_ptr<Balancer> balancer_;
  RequestQueue queue_;
  std::unique_ptr<RetryBudget> budget_;
  HealthChecker* checker_ = nullptr;  // frees itself after stop()
  UvHandle<uv_timer_t> timer_;
  bool timer_running_ = false;
  size_t idle_total_ = 0;
  bool serving_ = false;  // inside serve_queue(): no nested pass

  // Completions, smoothed: the service time predicts queue waits, the
  // drain rate gives Retry-After.
  uint64_t service_ewma_ns_ = 0;
  double drain_rate_ = 0;       // completions per second
  uint64_t drain_window_ns_ = 0;
  uint64_t drain_count_ = 0;
};

}  // namespace sluice::proxy
