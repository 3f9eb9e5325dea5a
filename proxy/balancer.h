// Picks the server for a request. The seam is real: round_robin and
// least_connections today, random_two and adaptive policies next.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "config/config.h"

namespace sluice::proxy {

// What a balancer may look at; the pool owns the authoritative counts.
struct ServerLoad {
  uint32_t weight = 1;
  uint32_t in_flight = 0;
  uint32_t max_concurrent = 0;  // 0 = no cap
  bool healthy = true;

  bool has_slot() const { return max_concurrent == 0 || in_flight < max_concurrent; }
};

// Bit i set: server i was already tried for this request (retries go elsewhere).
using TriedSet = uint64_t;
inline constexpr size_t kMaxServers = 64;

class Balancer {
 public:
  virtual ~Balancer() = default;
  // A healthy server with a free slot that is not in `tried`, or nullopt.
  // Never returns a server at its cap.
  virtual std::optional<size_t> pick(std::span<const ServerLoad> servers, TriedSet tried) = 0;
};

std::unique_ptr<Balancer> make_balancer(config::Balance kind, size_t servers);

inline bool eligible(const ServerLoad& s, size_t i, TriedSet tried) {
  return s.healthy && s.has_slot() && (tried & (TriedSet{1} << i)) == 0;
}

}  // namespace sluice::proxy
