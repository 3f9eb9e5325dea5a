// Everything sluice knows about one upstream: its servers (each with the
// one authoritative in-flight counter), the waiting room for requests that
// find every server at its limit, active health checks and the retry
// budget. A pool lives as long as its upstream's name is in the config: a
// reload reconfigures it in place, so servers that stay keep their counts,
// limits, health and idle connections, and queued requests keep their
// places.
//
// One pool serves every loop (io_threads): the shield is a promise about
// the app, so a server with max_concurrent 16 never sees a 17th request
// whichever loop it came through, and a request queued on one loop is
// served by a slot freed on another. Its state is behind one mutex, taken
// a few times per request for well under a microsecond. What belongs to a
// loop (connections, their timers) is in that loop's UpstreamLink. The
// pool's own timer and health checks run on its home loop, the loop that
// created it. Decisions about queued requests reach them as letters
// through their loop's WaiterInbox.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/uv_handle.h"
#include "proxy/balancer.h"
#include "proxy/health_checker.h"
#include "proxy/request_queue.h"
#include "proxy/upstream_server.h"
#include "proxy/waiter_inbox.h"

namespace sluice::proxy {

class RetryBudget;

// How a request's use of a server ended, for limits and health.
enum class Outcome : uint8_t {
  Success,   // a response the app meant (any status but the ones below)
  Overload,  // the app said it is busy: 503, or refused while it had our requests
  Failure,   // connect timeout, reset, garbage, 5xx other than 503
  Neutral,   // nothing learned (the client left, a retry elsewhere)
};

struct SlotGrant {
  UpstreamServer* server = nullptr;
  uint32_t in_flight = 0;  // the server's requests, this one included
  size_t index = 0;        // the server's place in the pool
  explicit operator bool() const { return server != nullptr; }
};

// What the admin endpoint shows, copied under the lock.
struct ServerView {
  std::string address;
  uint32_t in_flight = 0;
  uint32_t limit = 0;
  uint32_t limit_configured = 0;
  uint32_t limit_learned = 0;
  uint64_t ejections = 0;
  bool healthy = true;
  ServerHealth health = ServerHealth::Healthy;
};
struct PoolView {
  std::vector<ServerView> servers;
  size_t queue_length = 0;
  uint64_t retry_budget = 0;
  uint64_t service_ns = 0;
  double drain_per_second = 0;
  uint32_t retry_after = 0;
};

class UpstreamPool final : private HealthListener {
 public:
  // On the home loop's thread.
  UpstreamPool(uv_loop_t* home, const config::Upstream& cfg);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Home loop. Reload: new settings and server list. Servers whose address
  // stays keep their state; new ones start with slow start; dropped ones
  // leave the rotation and are freed once their last request has finished
  // and no loop keeps an idle connection to them.
  void reconfigure(const config::Upstream& cfg);
  // No request in flight or waiting: a pool whose upstream was removed can go.
  bool quiet() const;
  // Home loop, at shutdown once every loop has drained: health checks and
  // housekeeping stop, so that they no longer keep the loop running.
  void stop();

  // Any thread, from here on.

  // Picks a server with a free slot and takes the slot. A `new_request`
  // (not a retry, nor one back from the queue) also makes its deposit in
  // the retry budget, under the same lock.
  SlotGrant acquire(TriedSet tried, bool new_request = false);
  // Gives the slot back, learns from `outcome`, and serves the queue.
  // `rtt_ns` and `in_flight_at_start` describe the request (for Success).
  void release(UpstreamServer* s, Outcome outcome, uint64_t rtt_ns = 0,
               uint32_t in_flight_at_start = 0);
  // Every server is out of use (ejected or failing its checks).
  bool all_down() const;
  // Requests at `s` now (one of them the caller's).
  uint32_t in_flight_of(const UpstreamServer* s) const;

  // Waiting room. admit() queues the waiter on the calling loop, or says
  // why it cannot wait: the queue is full (and holds nobody of a lower
  // class), or the wait it predicts exceeds the request's budget
  // (`budget_ns`, 0 = the queue timeout). A waiter evicted for a higher
  // class hears on_shed().
  std::optional<ShedReason> admit(QueueWaiter* w, config::Priority p, uint64_t budget_ns);
  // On the waiter's loop: it no longer waits. A slot already granted to it
  // and not yet delivered goes back.
  void leave(QueueWaiter* w);
  size_t queue_length() const;
  // Seconds a shed client should wait before trying again: the time the
  // queue takes to drain at the rate it has been draining, at least 1.
  uint32_t retry_after() const;

  // Retry budget: every request deposits (acquire), every retry withdraws.
  bool allow_retry();

  PoolView view() const;
  // The servers, one figure at a time (view() copies them all at once).
  // Of a server itself only address() and endpoint() may be read outside
  // the pool's lock.
  size_t size() const;
  const UpstreamServer& server(size_t i) const;
  uint32_t in_flight(size_t i) const;
  uint32_t limit(size_t i) const;
  ServerHealth health(size_t i) const;
  uint64_t service_time_ns() const;
  double drain_per_second() const;

 private:
  std::span<const ServerLoad> snapshot();
  SlotGrant take(size_t i);
  void serve_queue();
  void post(QueueWaiter* w, const WaiterLetter& letter);
  void give_back(UpstreamServer* s, Outcome outcome, uint64_t rtt_ns, uint32_t in_flight_at_start);
  void drop_retired();
  void housekeeping();
  void ensure_timer();
  void start_checks();
  void stop_checks();
  size_t healthy_count() const;
  uint32_t retry_after_locked() const;
  void on_health_change(size_t server, bool healthy, const char* reason) override;
  static void on_timer(uv_timer_t* t);
  static void on_kick(uv_async_t* a);

  uv_loop_t* home_;
  const std::thread::id home_thread_;
  const std::string name_;
  mutable std::mutex mu_;
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
  // Another loop needs the timer running: it wakes the home loop.
  UvHandle<uv_async_t> kick_;
  bool timer_running_ = false;
  bool stopped_ = false;

  // Completions, smoothed: the service time predicts queue waits, the
  // drain rate gives Retry-After.
  uint64_t service_ewma_ns_ = 0;
  double drain_rate_ = 0;       // completions per second
  uint64_t drain_window_ns_ = 0;
  uint64_t drain_count_ = 0;
};

}  // namespace sluice::proxy
