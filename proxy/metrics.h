// Counters and histograms for the admin endpoint. Each loop has its own
// and counts only what happens on it, so plain integers suffice; the admin
// endpoint adds up copies (loop_stats.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace sluice::proxy {

// Latency buckets in the Prometheus style (upper bounds, seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025,  0.05,  0.1,    0.25,  0.5,
                                                     1,      2.5,   5,      10};
  void observe_us(uint64_t us);

  // Cumulative count of observations <= kBounds[i].
  uint64_t cumulative(size_t i) const;
  uint64_t count() const { return count_; }
  double sum_seconds() const { return static_cast<double>(sum_us_) / 1e6; }
  void add(const Histogram& other);

 private:
  std::array<uint64_t, kBounds.size()> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_us_ = 0;
};

struct RouteMetrics {
  // Index 1..5 = 1xx..5xx; 0 = the client left before any response.
  std::array<uint64_t, 6> by_class{};
  Histogram duration;
};

// Why a request got sluice's 503 instead of reaching the app.
enum class ShedReason : uint8_t {
  QueueFull,     // no room to wait
  QueueTimeout,  // waited queue.timeout
  Deadline,      // its predicted wait exceeded its budget: shed on arrival
  Overload,      // waited past queue.target in a standing queue
  Priority,      // made room for a request of a higher class
  ClientGone,    // the client left while queued (no 503 sent)
  Unavailable,   // every server is down
  Count
};
const char* to_string(ShedReason r);

struct UpstreamMetrics {
  std::array<uint64_t, static_cast<size_t>(ShedReason::Count)> shed{};
  uint64_t retries = 0;
  uint64_t retries_denied = 0;  // by the retry budget or a full queue
  Histogram queue_wait;
};

struct Metrics {
  uint64_t connections_accepted = 0;
  uint64_t response_body_bytes = 0;
  std::unordered_map<std::string, RouteMetrics> routes;        // by route name; "" = no route
  std::unordered_map<std::string, UpstreamMetrics> upstreams;  // by upstream name

  void add(const Metrics& other);
};

}  // namespace sluice::proxy
