// One loop's side of an upstream: its keep-alive connections to the
// upstream's servers, their timers, and its copy of the upstream's
// settings. The shield itself (slots, queue, limits, health) is the
// UpstreamPool, shared by every loop; a link reaches it through pool().
// Loop thread only, like the connections it keeps.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "config/config.h"
#include "core/deadline_timers.h"
#include "proxy/upstream_pool.h"

namespace sluice {
class BusyPoll;
}

namespace sluice::proxy {

class UpstreamConnection;

class UpstreamLink {
 public:
  UpstreamLink(uv_loop_t* loop, std::shared_ptr<UpstreamPool> pool, const config::Upstream& cfg,
               BusyPoll* busy_poll);
  ~UpstreamLink();
  UpstreamLink(const UpstreamLink&) = delete;
  UpstreamLink& operator=(const UpstreamLink&) = delete;

  UpstreamPool& pool() const { return *pool_; }
  const std::shared_ptr<UpstreamPool>& shared_pool() const { return pool_; }
  // This loop's copy of the settings: read on every request, so not the
  // pool's (which another loop's reload may be changing).
  const config::Upstream& config() const { return cfg_; }
  uv_loop_t* loop() const { return loop_; }
  // Kicked when a request has been written to one of the upstream's servers.
  BusyPoll* busy_poll() const { return busy_poll_; }
  // Its connections' connect, response and keep-alive timeouts: a few
  // durations, re-armed on every read, so FIFO lists rather than libuv's
  // timer heap.
  DeadlineTimers& timers() { return timers_; }

  // Reload, after the pool's: the new settings; idle connections to
  // servers the reload dropped, and past allowance(), close.
  void reconfigure(const config::Upstream& cfg);

  // Keep-alive connections: keepalive.max_idle on this loop, or as many as
  // a steady load needs (see allowance()).
  UpstreamConnection* take_idle(UpstreamServer* s);
  // Returns false when the link is full or the server was dropped: the
  // caller closes the connection.
  bool put_idle(UpstreamConnection* conn);
  // A connection of this loop's starts or stops carrying a request
  // (connecting included).
  void busy_started();
  void busy_ended() { --busy_; }
  void forget_idle(UpstreamConnection* conn);  // it is closing
  size_t idle_count() const { return idle_total_; }
  void close_idle();  // shutdown, or the upstream is gone

 private:
  // Most recent last. An entry stays when its list empties: servers are
  // few, and the vector's capacity is kept for the next connection. Each
  // entry holds its server (UpstreamServer::idle_refs) until a reload
  // drops the server or the link goes.
  struct Idle {
    UpstreamServer* server;
    std::vector<UpstreamConnection*> conns;
  };
  Idle* idle_of(UpstreamServer* s);
  // Idle connections kept now: keepalive.max_idle, or, when more were
  // carrying requests at once lately, enough to have that many open again.
  // A steady 64 concurrent requests with max_idle 32 would otherwise close
  // up to 32 connections a round and open as many anew: work for the app
  // and, at thousands a second, a port range full of TIME_WAIT. Kept
  // connections past max_idle are reused newest first, so once the load
  // drops the oldest ones go at idle_timeout.
  size_t allowance();
  void roll_window();
  void drop(Idle& idle, size_t n);  // closes its n oldest

  uv_loop_t* loop_;
  std::shared_ptr<UpstreamPool> pool_;
  config::Upstream cfg_;
  BusyPoll* busy_poll_;
  // Before the connections: destroyed after them.
  DeadlineTimers timers_;
  std::vector<Idle> idle_;
  size_t idle_total_ = 0;
  size_t busy_ = 0;         // connections carrying a request now
  size_t peak_ = 0;         // most busy at once in the current window...
  size_t peak_before_ = 0;  // ...and in the one before
  uint64_t window_ms_ = 0;  // uv_now() when the current window began
};

}  // namespace sluice::proxy
