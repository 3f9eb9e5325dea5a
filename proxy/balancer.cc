#include "proxy/balancer.h"

#include <atomic>
#include <chrono>

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

// Power of two choices: two distinct eligible servers drawn in proportion
// to weight, the one with fewer in flight relative to weight wins. The most
// loaded server is never chosen while another is eligible, yet the choice
// stays random, so equal servers share ties without a rotation to keep in
// step. Two passes over at most kMaxServers entries, no allocation.
class RandomTwo final : public Balancer {
 public:
  explicit RandomTwo(uint64_t seed) : state_(seed) {}

  std::optional<size_t> pick(std::span<const ServerLoad> servers, TriedSet tried) override {
    uint64_t total = 0;
    size_t count = 0;
    size_t only = 0;
    for (size_t i = 0; i < servers.size(); ++i) {
      if (!eligible(servers[i], i, tried)) continue;
      total += weight(servers[i]);
      ++count;
      only = i;
    }
    if (count == 0) return std::nullopt;
    if (count == 1) return only;
    const size_t a = draw(servers, tried, total, servers.size());
    const size_t b = draw(servers, tried, total - weight(servers[a]), a);
    // in_flight / weight compared without division. The first draw wins
    // ties, and it is itself a weighted draw, so ties follow the weights.
    const uint64_t load_a = uint64_t{servers[a].in_flight} * weight(servers[b]);
    const uint64_t load_b = uint64_t{servers[b].in_flight} * weight(servers[a]);
    return load_b < load_a ? b : a;
  }

 private:
  // The loader refuses weight 0; a 0 here would make a server unreachable.
  static uint64_t weight(const ServerLoad& s) { return s.weight == 0 ? 1 : s.weight; }

  // The eligible server (other than `skip`) whose slice of the cumulative
  // weights holds a random point in [0, range); range is their total.
  size_t draw(std::span<const ServerLoad> servers, TriedSet tried, uint64_t range, size_t skip) {
    uint64_t point = below(range);
    size_t last = skip;
    for (size_t i = 0; i < servers.size(); ++i) {
      if (i == skip || !eligible(servers[i], i, tried)) continue;
      if (point < weight(servers[i])) return i;
      point -= weight(servers[i]);
      last = i;
    }
    return last;  // not reached while range is the candidates' total
  }

  // splitmix64: an add and three xor-multiply mixes per number.
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Lemire's multiply-shift instead of %: no division, negligible bias.
  uint64_t below(uint64_t range) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * range) >> 64);
  }

  uint64_t state_;
};

// Pools built at the same instant (reload, several upstreams) must not
// draw the same sequence, hence the counter beside the clock.
uint64_t balancer_seed() {
  static std::atomic<uint64_t> counter{0};
  const auto now = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return now ^ (counter.fetch_add(1, std::memory_order_relaxed) * 0xd1b54a32d192ed03ULL);
}

}  // namespace

std::unique_ptr<Balancer> make_balancer(config::Balance kind, size_t servers) {
  switch (kind) {
    case config::Balance::LeastConnections: return std::make_unique<LeastConnections>();
    case config::Balance::RandomTwo: return std::make_unique<RandomTwo>(balancer_seed());
    case config::Balance::RoundRobin: break;
  }
  return std::make_unique<RoundRobin>(servers);
}

}  // namespace sluice::proxy
