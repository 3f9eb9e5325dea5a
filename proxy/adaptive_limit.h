// A server's concurrency limit learned from latency (max_concurrent: auto).
//
// A thread-per-request app answers in its service time S while it has a
// free thread; past its T threads requests wait in its internal queue and
// latency grows with every extra request. So the queue-free latency (the
// "no-load RTT") times the observed throughput estimates T. Per window of
// responses (one round trip's worth):
//
//   queueing (average RTT above the no-load RTT by more than `tolerance`):
//     capacity = no_load_rtt * sum(in_flight) / sum(rtt)
//     limit    = capacity * (1 + headroom)
//   no queueing, and the limit held requests back:
//     limit   += limit * headroom (at least 1), a quarter of that once
//                the app has been seen queueing
//
// (Vegas' queue estimate limit * (1 - no_load/rtt) and the gradient of
// Netflix's concurrency-limits and Envoy's adaptive concurrency filter are
// the same quantity.) The no-load RTT is the lowest window average since the
// last probe; a probe halves the limit for one window so the app has free
// threads, and measures it afresh: periodically; soon after the limit has
// halved (a slower app looks like queueing until it is re-measured); and
// again while each probe finds a lower figure than the last (started too
// high, the first windows queued already).
//
// A 503 from a busy app is backpressure: a multiplicative decrease, once per
// round trip, and for a probe interval no growth back to where it was
// refused (else an app without a queue of its own sees a 503 at every
// climb).
//
// Loop thread only. Time is passed in, so tests are deterministic; nothing
// allocates.
#pragma once

#include <cstdint>

namespace sluice::proxy {

struct AdaptiveLimitOptions {
  uint32_t min = 1;
  uint32_t max = 1000;   // the configured ceiling: never exceeded
  uint32_t initial = 8;  // clamped to [min, max]
  // Requests allowed to wait inside the app beyond its estimated threads,
  // as a share of them: covers the network and jitter so threads do not
  // idle between two requests, without building a queue there. Also the
  // growth per window (at least one request) while latency is flat.
  double headroom = 0.1;
  // A window slower than the no-load RTT by less than this share is noise,
  // not queueing.
  double tolerance = 0.05;
  double backoff = 0.75;  // limit factor after a 503 from a busy app
  // Samples per window: at least this many, and at least the limit (one
  // round trip's worth).
  uint32_t window_samples = 16;
  // Re-measure the no-load RTT this often (and at most every 16 windows).
  uint64_t probe_interval_ns = 10'000'000'000;
};

class AdaptiveLimit {
 public:
  explicit AdaptiveLimit(const AdaptiveLimitOptions& options = {});

  // Requests this server may have in flight now; during a probe, the
  // lowered probe limit.
  uint32_t limit() const { return limit_; }
  // The learned limit; limit() unless probing. It moves by a request or two
  // from window to window near the app's capacity.
  uint32_t learned() const;
  bool probing() const { return probing_; }
  // The latency without queueing, 0 until measured.
  uint64_t no_load_rtt_ns() const { return no_load_ns_ == kNone ? 0 : no_load_ns_; }

  // A response arrived. `in_flight` counts the requests in flight to this
  // server when this one was sent, itself included; `ok` is false for
  // failures (timeouts, resets), which carry no latency information and are
  // ignored. Returns true when limit() changed (a probe starting or ending
  // changes it too; probing() tells those apart for logging).
  bool on_sample(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight, bool ok);
  // The app refused a request (503) while it had requests in flight from
  // us; `in_flight` as for on_sample. Returns true when limit() changed.
  bool on_overload(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight);
  // Reload: a new floor and ceiling, keeping what was learned.
  // Returns true when limit() changed.
  bool set_bounds(uint32_t min, uint32_t max);

 private:
  static constexpr uint64_t kNone = UINT64_MAX;

  void end_window(uint64_t now_ns);
  void start_probe(uint64_t now_ns, uint32_t probe_limit);
  void end_probe(uint64_t now_ns);
  bool apply(uint64_t now_ns);  // limit_ from estimate_; true if it changed
  void reset_window();
  double clamp(double limit) const;  // to [min, max] and the refusal ceiling

  AdaptiveLimitOptions options_;
  double estimate_;  // the learned limit, before rounding down
  uint32_t limit_;
  // Responses to requests sent before this instant reflect an older limit.
  uint64_t changed_at_ns_ = 0;

  // The current window.
  uint64_t sum_rtt_ns_ = 0;
  uint64_t sum_in_flight_ = 0;
  uint32_t samples_ = 0;

  uint64_t no_load_ns_ = kNone;
  // Requests in flight when it was measured: a probe above that learns nothing.
  double no_load_in_flight_ = 0;
  // The last probe found a lower no-load RTT (or none has run): the one
  // before was taken with requests queued, and a lower probe may find
  // lower still.
  bool probe_again_ = true;
  bool queued_seen_ = false;  // a window has shown queueing in the app
  // Below the in-flight count the app last refused, until ceiling_until_ns_.
  uint32_t ceiling_ = UINT32_MAX;
  uint64_t ceiling_until_ns_ = 0;

  bool probing_ = false;
  uint32_t probe_limit_ = 0;
  bool started_ = false;              // a response has been seen
  uint64_t last_probe_ns_ = 0;        // when the last probe ended (or the first response came)
  double estimate_after_probe_ = 0;   // the learned limit then
  uint32_t windows_since_probe_ = 0;
};

}  // namespace sluice::proxy
