// Everything sluice knows about one upstream: its servers, the exact count
// of requests in flight to each (the one authoritative counter, loop thread
// only), their idle keep-alive connections, and the waiting room for
// requests that find every server at its cap.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "config/config.h"
#include "proxy/balancer.h"

namespace sluice::proxy {

class UpstreamConnection;

// A request waiting for a slot. Intrusive, so joining and leaving the
// queue allocate nothing and leaving (client gone, timeout) is O(1).
class QueueWaiter {
 public:
  // A slot may be free now: try pick() again. The waiter has already been
  // taken off the queue.
  virtual void on_slot_available() = 0;
  bool queued() const { return queued_; }

 protected:
  ~QueueWaiter() = default;

 private:
  friend class UpstreamPool;
  QueueWaiter* prev_ = nullptr;
  QueueWaiter* next_ = nullptr;
  bool queued_ = false;
};

class UpstreamPool {
 public:
  UpstreamPool(uv_loop_t* loop, const config::Upstream& cfg);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  const config::Upstream& config() const { return cfg_; }

  // Reload: takes the new settings (weights, caps, queue, keep-alive,
  // timeouts, balance) while keeping in-flight counts, idle connections and
  // the queue. Only possible when the server list is the same addresses in
  // the same order (requests in flight hold server indexes); returns false
  // otherwise, and the caller builds a new pool.
  bool reconfigure(const config::Upstream& cfg);
  // No request in flight or waiting: a retired pool can go.
  bool quiet() const;
  uv_loop_t* loop() const { return loop_; }
  const config::Server& server_config(size_t i) const { return cfg_.servers[i]; }

  // Picks a server with a free slot and takes the slot (in_flight + 1).
  std::optional<size_t> acquire(TriedSet tried);
  // Gives a slot back and lets the head of the queue try again.
  void release(size_t server);
  uint32_t in_flight(size_t server) const { return load_[server].in_flight; }

  // Keep-alive connections.
  UpstreamConnection* take_idle(size_t server);
  // Returns false when the pool is full: the caller closes the connection.
  bool put_idle(UpstreamConnection* conn);
  void forget_idle(UpstreamConnection* conn);  // it is closing
  size_t idle_count() const;
  void close_idle();  // shutdown

  // Waiting room.
  bool queue_full() const { return queue_len_ >= cfg_.queue.max_length; }
  void enqueue(QueueWaiter* w);
  void dequeue(QueueWaiter* w);
  size_t queue_length() const { return queue_len_; }

 private:
  void wake_waiters();

  uv_loop_t* loop_;
  config::Upstream cfg_;
  std::vector<ServerLoad> load_;
  std::vector<std::vector<UpstreamConnection*>> idle_;  // per server, most recent last
  std::unique_ptr<Balancer> balancer_;
  QueueWaiter* head_ = nullptr;
  QueueWaiter* tail_ = nullptr;
  size_t queue_len_ = 0;
};

}  // namespace sluice::proxy
