#include "proxy/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace sluice::proxy {

RetryBudget::RetryBudget(const RetryBudgetOptions& options)
    : deposit_units_(std::llround(std::clamp(options.ratio, 0.0, 1000.0) * kUnit)),
      reserve_units_(static_cast<int64_t>(std::llround(static_cast<double>(options.min_per_second) *
                                                       static_cast<double>(options.ttl_ns) / 1e9 * kUnit))),
      slice_ns_(std::max<uint64_t>(options.ttl_ns / kSlices, 1)) {}

void RetryBudget::advance(uint64_t now_ns) {
  const uint64_t slice = now_ns / slice_ns_;
  if (!started_) {
    started_ = true;
    current_ = slice;
    return;
  }
  // A clock that went back (it should not) keeps counting into the current slice.
  if (slice <= current_) return;
  // Empty the slices between the last call and now; after a pause longer
  // than ttl that is all of them, so the loop is bounded by kSlices.
  const uint64_t steps = std::min<uint64_t>(slice - current_, kSlices);
  for (uint64_t i = 1; i <= steps; ++i) {
    int64_t& expired = slices_[(current_ + i) % kSlices];
    sum_ -= expired;
    expired = 0;
  }
  current_ = slice;
}

void RetryBudget::deposit(uint64_t now_ns) {
  advance(now_ns);
  slices_[current_ % kSlices] += deposit_units_;
  sum_ += deposit_units_;
}

bool RetryBudget::try_withdraw(uint64_t now_ns) {
  advance(now_ns);
  if (sum_ + reserve_units_ < kUnit) return false;
  slices_[current_ % kSlices] -= kUnit;
  sum_ -= kUnit;
  return true;
}

uint64_t RetryBudget::available(uint64_t now_ns) {
  advance(now_ns);
  const int64_t units = sum_ + reserve_units_;
  return units <= 0 ? 0 : static_cast<uint64_t>(units / kUnit);
}

}  // namespace sluice::proxy
