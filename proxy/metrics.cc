#include "proxy/metrics.h"

namespace sluice::proxy {

void Histogram::observe_us(uint64_t us) {
  ++count_;
  sum_us_ += us;
  double s = static_cast<double>(us) / 1e6;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (s <= kBounds[i]) {
      ++buckets_[i];
      return;
    }
  }
}

uint64_t Histogram::cumulative(size_t i) const {
  uint64_t n = 0;
  for (size_t k = 0; k <= i && k < buckets_.size(); ++k) n += buckets_[k];
  return n;
}

void Histogram::add(const Histogram& o) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  sum_us_ += o.sum_us_;
}

void Metrics::add(const Metrics& o) {
  connections_accepted += o.connections_accepted;
  response_body_bytes += o.response_body_bytes;
  for (const auto& [name, r] : o.routes) {
    RouteMetrics& mine = routes[name];
    for (size_t i = 0; i < r.by_class.size(); ++i) mine.by_class[i] += r.by_class[i];
    mine.duration.add(r.duration);
  }
  for (const auto& [name, u] : o.upstreams) {
    UpstreamMetrics& mine = upstreams[name];
    for (size_t i = 0; i < u.shed.size(); ++i) mine.shed[i] += u.shed[i];
    mine.retries += u.retries;
    mine.retries_denied += u.retries_denied;
    mine.queue_wait.add(u.queue_wait);
  }
}

const char* to_string(ShedReason r) {
  switch (r) {
    case ShedReason::QueueFull: return "queue_full";
    case ShedReason::QueueTimeout: return "timeout";
    case ShedReason::Deadline: return "deadline";
    case ShedReason::Overload: return "overload";
    case ShedReason::Priority: return "priority";
    case ShedReason::ClientGone: return "client_gone";
    case ShedReason::Unavailable: return "unavailable";
    case ShedReason::Count: break;
  }
  return "?";
}

}  // namespace sluice::proxy
