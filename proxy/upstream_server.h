// One server of an upstream and everything sluice has learned about it:
// the authoritative in-flight count, its effective limit (configured,
// learned, lowered by backpressure, ramped by slow start), its health
// (active checks and passive ejection) and its idle keep-alive connections.
// Owned by its UpstreamPool and kept across reloads that keep its address,
// so none of this is forgotten when the config changes.
//
// The pool is shared by every loop, and so is this: everything here is
// read and changed under the pool's lock, except address() and endpoint()
// (fixed for the server's life: a reload that changes the address makes a
// new server) and retired(), which any loop may read at any time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/balancer.h"

namespace sluice::proxy {

class AdaptiveLimit;

enum class ServerHealth : uint8_t { Healthy, Ejected, CheckFailed };
const char* to_string(ServerHealth h);

class UpstreamServer {
 public:
  UpstreamServer(const config::Server& cfg, const config::Upstream& up);
  ~UpstreamServer();
  UpstreamServer(const UpstreamServer&) = delete;
  UpstreamServer& operator=(const UpstreamServer&) = delete;

  // A reload kept this server: new weight, caps and policies, same state.
  void configure(const config::Server& cfg, const config::Upstream& up);

  const config::Server& config() const { return cfg_; }
  const config::SocketAddress& endpoint() const { return endpoint_; }
  const std::string& address() const { return endpoint_.text; }
  // What the balancer sees; kept current by refresh().
  const ServerLoad& load() const { return load_; }
  uint32_t in_flight() const { return load_.in_flight; }
  bool has_slot() const { return load_.healthy && load_.has_slot(); }

  // Slot accounting, by the pool.
  void take_slot() { ++load_.in_flight; }
  void give_slot() { --load_.in_flight; }

  // What happened to a request. `rtt_ns`: slot taken to response complete.
  void on_success(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight_at_start);
  // The app is busy (503, or refused while it had requests from us): lower
  // the limit, but this is no health failure.
  void on_overload(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight_at_start);
  // A real failure; returns true if it ejected the server.
  bool on_failure(uint64_t now_ns);
  void set_check_result(bool healthy, uint64_t now_ns);
  bool check_healthy() const { return check_healthy_; }
  // Added to a running upstream: ramp up like a server coming back.
  void begin_slow_start(uint64_t now_ns) { start_ramp(now_ns); }

  // Recomputes the effective limit, weight and availability at `now`.
  // Returns true while something is still changing with time (an ejection
  // to end, a slow start to finish), so the pool keeps its timer running.
  bool refresh(uint64_t now_ns);

  ServerHealth health() const;
  uint32_t limit() const { return load_.max_concurrent; }   // effective; 0 = none
  uint32_t learned_limit() const;                          // 0 unless adaptive
  uint64_t ejections() const { return total_ejections_; }

  // The pool's place for it, or kRetired once a reload dropped it.
  static constexpr size_t kRetired = static_cast<size_t>(-1);
  size_t index = kRetired;
  // A reload dropped it: no new connection to it is kept idle.
  bool retired() const { return retired_.load(std::memory_order_acquire); }
  void retire() { retired_.store(true, std::memory_order_release); }
  // Loops (UpstreamLink) that keep a list of idle connections to it: a
  // dropped server is freed only once none does, so no loop is left with a
  // pointer to it.
  std::atomic<uint32_t> idle_refs{0};

 private:
  void start_ramp(uint64_t now_ns);

  const config::SocketAddress endpoint_;
  config::Server cfg_;
  config::PassiveHealth passive_;
  uint64_t slow_start_ns_ = 0;
  ServerLoad load_;
  std::unique_ptr<AdaptiveLimit> adaptive_;
  uint32_t logged_limit_ = 0;  // the learned limit last logged
  // Lowered by backpressure below the configured cap (0: not lowered);
  // climbs back one step per `overload_cap_` successes.
  uint32_t overload_cap_ = 0;
  uint32_t recover_count_ = 0;

  bool check_healthy_ = true;
  uint32_t failures_ = 0;          // consecutive real failures
  uint32_t ejections_ = 0;         // in a row, for the growing back-off
  uint64_t total_ejections_ = 0;
  uint64_t ejected_until_ns_ = 0;  // 0: not ejected
  uint64_t ramp_since_ns_ = 0;     // 0: no slow start running
  uint64_t healthy_since_ns_ = 0;
  std::atomic<bool> retired_{false};
};

}  // namespace sluice::proxy
