// One loop's counters, copied on that loop's thread, so that the admin
// endpoint (on the first loop) can add up every loop's without sharing
// their plain, unlocked counters (io_threads).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "core/worker_pool.h"
#include "proxy/listener.h"
#include "proxy/metrics.h"

namespace sluice::proxy {

struct LoopStats {
  Metrics metrics;
  size_t connections = 0;  // open now
  std::unordered_map<std::string, std::array<uint64_t, Listener::kRefusals>> refused;  // by listener
  std::unordered_map<std::string, size_t> idle;  // upstream keep-alive connections, by upstream
  uint64_t access_log_dropped = 0;
  WorkerPoolStats workers;
  uint64_t busy_poll_spins = 0;
  uint64_t busy_poll_ns = 0;
  unsigned loops = 0;  // how many loops these figures add up
  // Connections each loop accepted, by loop (0 is the first): how evenly
  // the kernel spreads them.
  std::map<unsigned, uint64_t> accepted_by_loop;

  void add(const LoopStats& other);
};

}  // namespace sluice::proxy
