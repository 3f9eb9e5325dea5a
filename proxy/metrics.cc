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
