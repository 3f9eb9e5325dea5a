#include "proxy/adaptive_limit.h"

#include <algorithm>

namespace sluice::proxy {

namespace {

// A probe drops to this share of the learned limit: below the app's thread
// count even when the limit has overshot it a little, and still half the
// throughput for the round trip or two it lasts.
constexpr double kProbeShare = 0.5;
// One window may lower the limit by this factor at most: a single slow
// window (a pause in the app, a noisy neighbour) must not empty the pipe.
constexpr double kMaxDrop = 0.5;
// The limit held requests back in a window when requests went out with
// this share of it in flight on average. (Just after a probe, requests go
// out as fast as in-flight climbs back: they see no queue, but that does not
// show the limit is too low.)
constexpr double kBindingShare = 0.9;
// Growth once the app has been seen queueing is the headroom divided by this.
constexpr double kGentleGrowth = 4;
// Periodic probes are at least this many windows apart, so they cost a few
// percent of throughput at worst even when windows are long.
constexpr uint32_t kMinWindowsBetweenProbes = 16;
// An early probe (probe_again_, or the limit halved since the last probe)
// waits this many windows, so the limit has settled on the last
// measurement first.
constexpr uint32_t kWindowsBeforeEarlyProbe = 2;

}  // namespace

AdaptiveLimit::AdaptiveLimit(const AdaptiveLimitOptions& options) : options_(options) {
  options_.min = std::max<uint32_t>(1, options_.min);
  options_.max = std::max(options_.max, options_.min);
  estimate_ = clamp(options_.initial);
  limit_ = static_cast<uint32_t>(estimate_);
  estimate_after_probe_ = estimate_;
}

uint32_t AdaptiveLimit::learned() const { return static_cast<uint32_t>(estimate_); }

double AdaptiveLimit::clamp(double limit) const {
  const uint32_t upper = std::max(options_.min, std::min(options_.max, ceiling_));
  return std::clamp(limit, static_cast<double>(options_.min), static_cast<double>(upper));
}

void AdaptiveLimit::reset_window() {
  sum_rtt_ns_ = 0;
  sum_in_flight_ = 0;
  samples_ = 0;
}

bool AdaptiveLimit::apply(uint64_t now_ns) {
  const uint32_t learned = static_cast<uint32_t>(estimate_);
  const uint32_t next = probing_ ? std::min(probe_limit_, learned) : learned;
  if (next == limit_) return false;
  limit_ = next;
  changed_at_ns_ = now_ns;
  return true;
}

bool AdaptiveLimit::on_sample(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight, bool ok) {
  if (!ok) return false;
  rtt_ns = std::max<uint64_t>(rtt_ns, 1);
  const uint64_t sent_ns = now_ns > rtt_ns ? now_ns - rtt_ns : 0;
  if (sent_ns < changed_at_ns_) return false;
  if (!started_) {
    started_ = true;
    last_probe_ns_ = now_ns;  // the probe interval counts from the first response
  }
  // A probe measures only requests that found the app with threads to spare.
  if (probing_ && in_flight > probe_limit_) return false;

  sum_rtt_ns_ += rtt_ns;
  sum_in_flight_ += in_flight;
  ++samples_;
  // A probe runs at half the limit: half the samples keep it as short as a
  // window while the average stays steady enough.
  const uint32_t at_least = probing_ ? options_.window_samples / 2 : options_.window_samples;
  if (samples_ < std::max({at_least, limit_, 1U})) return false;

  const uint32_t before = limit_;
  if (probing_)
    end_probe(now_ns);
  else
    end_window(now_ns);
  return limit_ != before;
}

void AdaptiveLimit::end_window(uint64_t now_ns) {
  const uint64_t average_ns = sum_rtt_ns_ / samples_;
  if (average_ns < no_load_ns_) {
    no_load_ns_ = average_ns;
    no_load_in_flight_ = static_cast<double>(sum_in_flight_) / samples_;
  }
  ++windows_since_probe_;
  if (ceiling_ != UINT32_MAX && now_ns >= ceiling_until_ns_) ceiling_ = UINT32_MAX;  // the app may have grown

  const double no_load = static_cast<double>(no_load_ns_);
  if (static_cast<double>(average_ns) > no_load * (1 + options_.tolerance)) {
    // Queueing: what the app got done per no-load RTT is its capacity.
    const double capacity = no_load * static_cast<double>(sum_in_flight_) / static_cast<double>(sum_rtt_ns_);
    estimate_ = std::max(capacity * (1 + options_.headroom), estimate_ * kMaxDrop);
    queued_seen_ = true;
  } else if (static_cast<double>(sum_in_flight_) >= kBindingShare * limit_ * samples_) {
    // No queueing and the limit held requests back: try more. A limit that
    // was not reached says nothing about the app, so it stays. Quickly until
    // the app first queues (like TCP's slow start), gently after: near the
    // app's capacity a window that looks queue-free is often noise.
    const double step = queued_seen_ ? options_.headroom / kGentleGrowth : options_.headroom;
    estimate_ += std::max(1.0, estimate_ * step);
  }
  estimate_ = clamp(estimate_);
  reset_window();

  const uint32_t probe_limit = std::max(options_.min, static_cast<uint32_t>(estimate_ * kProbeShare));
  const bool interval_due = now_ns > last_probe_ns_ && now_ns - last_probe_ns_ >= options_.probe_interval_ns &&
                            windows_since_probe_ >= kMinWindowsBetweenProbes;
  const bool early = (probe_again_ || estimate_ < estimate_after_probe_ * 0.5) &&
                     windows_since_probe_ >= kWindowsBeforeEarlyProbe && probe_limit < no_load_in_flight_;
  if (interval_due || early)
    start_probe(now_ns, probe_limit);
  else
    apply(now_ns);
}

void AdaptiveLimit::start_probe(uint64_t now_ns, uint32_t probe_limit) {
  probing_ = true;
  probe_limit_ = probe_limit;
  reset_window();
  apply(now_ns);
  // Requests sent before the probe may have queued behind each other.
  changed_at_ns_ = now_ns;
}

void AdaptiveLimit::end_probe(uint64_t now_ns) {
  const uint64_t average_ns = sum_rtt_ns_ / samples_;
  probe_again_ = static_cast<double>(average_ns) < static_cast<double>(no_load_ns_) * (1 - options_.tolerance);
  // Replaces rather than lowers: the app may have become slower since.
  no_load_ns_ = average_ns;
  no_load_in_flight_ = static_cast<double>(sum_in_flight_) / samples_;
  probing_ = false;
  last_probe_ns_ = now_ns;
  windows_since_probe_ = 0;
  estimate_after_probe_ = estimate_;
  reset_window();
  apply(now_ns);
  changed_at_ns_ = now_ns;
}

bool AdaptiveLimit::on_overload(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight) {
  const uint32_t before = limit_;
  // Whenever it was sent, the refused request shows what the app cannot hold.
  if (in_flight > 0) {
    ceiling_ = std::min(ceiling_, std::max(options_.min, in_flight - 1));
    ceiling_until_ns_ = now_ns + std::min(options_.probe_interval_ns, UINT64_MAX - now_ns);
  }
  const uint64_t sent_ns = now_ns > rtt_ns ? now_ns - rtt_ns : 0;
  // Refusals of requests sent before the last decrease were caused by the
  // older, higher limit: one decrease per round trip, as TCP does.
  const bool fresh = sent_ns >= changed_at_ns_;
  if (fresh) {
    // Refused even at the probe limit: the probe would not measure a
    // queue-free app, so it is abandoned and the lower figure decreased.
    const double base = std::min(estimate_, static_cast<double>(limit_));
    probing_ = false;
    estimate_ = base * options_.backoff;
    reset_window();
  }
  estimate_ = clamp(estimate_);
  apply(now_ns);
  if (fresh) changed_at_ns_ = now_ns;
  return limit_ != before;
}

bool AdaptiveLimit::set_bounds(uint32_t min, uint32_t max) {
  options_.min = std::max<uint32_t>(1, min);
  options_.max = std::max(max, options_.min);
  estimate_ = clamp(estimate_);
  probe_limit_ = std::clamp(probe_limit_, options_.min, options_.max);
  const uint32_t before = limit_;
  const uint32_t learned = static_cast<uint32_t>(estimate_);
  limit_ = probing_ ? std::min(probe_limit_, learned) : learned;
  return limit_ != before;
}

}  // namespace sluice::proxy
