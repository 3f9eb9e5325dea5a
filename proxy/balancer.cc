#include "proxy/balancer.h"

namespace sluice::proxy {

namespace {

// Smooth weighted round robin (as nginx does it): every pick adds each
// server's weight to its score, takes the highest and subtracts the total,
// so weights 5:1:1 interleave as a a b a c a a rather than a a a a a b c.
class RoundRobin final : public Balancer {
 public:
  explicit RoundRobin(size_t n) : current_(n, 0) {}

  std::optional<size_t> pick(std::span<const ServerLoad> servers, TriedSet tried) override {
    if (current_.size() != servers.size()) current_.assign(servers.size(), 0);
    int64_t total = 0;
    std::optional<size_t> best;
    for (size_t i = 0; i < servers.size(); ++i) {
      if (!eligible(servers[i], i, tried)) continue;
      current_[i] += servers[i].weight;
      total += servers[i].weight;
      if (!best || current_[i] > current_[*best]) best = i;
    }
    if (best) current_[*best] -= total;
    return best;
  }

 private:
  std::vector<int64_t> current_;
};

// Fewest requests in flight relative to weight; ties rotate so equal
// servers share the load instead of the first one taking every tie.
class LeastConnections final : public Balancer {
 public:
  std::optional<size_t> pick(std::span<const ServerLoad> servers, TriedSet tried) override {
    std::optional<size_t> best;
    const size_t n = servers.size();
    for (size_t k = 0; k < n; ++k) {
      size_t i = (next_ + k) % n;
      if (!eligible(servers[i], i, tried)) continue;
      if (!best || uint64_t{servers[i].in_flight} * servers[*best].weight <
                       uint64_t{servers[*best].in_flight} * servers[i].weight) {
        best = i;
      }
    }
    if (best) next_ = (*best + 1) % (n == 0 ? 1 : n);
    return best;
  }

 private:
  size_t next_ = 0;
};

}  // namespace

std::unique_ptr<Balancer> make_balancer(config::Balance kind, size_t servers) {
  switch (kind) {
    case config::Balance::LeastConnections: return std::make_unique<LeastConnections>();
    case config::Balance::RoundRobin: break;
  }
  return std::make_unique<RoundRobin>(servers);
}

}  // namespace sluice::proxy
