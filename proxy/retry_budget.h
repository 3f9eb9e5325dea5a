// How many retries an upstream may send, as Finagle's RetryBudget and
// Linkerd's retry budgets count them: every request earns `ratio` of a
// retry, a reserve of `min_per_second` x ttl retries is there regardless of
// traffic, and both what was earned and what was spent count for `ttl`.
// Defaults: 20 % of requests plus 10 per second. So a failing app gets at
// most 1.2 times its traffic (plus a trickle) instead of `attempts` times.
//
// With no traffic, at most min_per_second x ttl retries go within any ttl
// (10 s: 100), then none until some of them are older than ttl. Deposits and
// withdrawals are kept in kSlices buckets of ttl / kSlices, so they expire
// between ttl - ttl / kSlices and ttl after they were made.
//
// Loop thread only; O(1) per call; no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace sluice::proxy {

struct RetryBudgetOptions {
  double ratio = 0.2;                 // retries earned per request, 0 to 1000
  uint32_t min_per_second = 10;       // retries allowed without traffic
  uint64_t ttl_ns = 10'000'000'000;  // how long a deposit or a withdrawal counts
};

class RetryBudget {
 public:
  explicit RetryBudget(const RetryBudgetOptions& options = {});

  // A request went out (its first attempt; retries do not earn retries).
  void deposit(uint64_t now_ns);
  // A retry may go out: true takes one from the budget, false leaves it.
  bool try_withdraw(uint64_t now_ns);
  // Retries try_withdraw would allow now, one after another.
  uint64_t available(uint64_t now_ns);

 private:
  static constexpr std::size_t kSlices = 10;
  // Fixed point: a retry is kUnit, so a deposit of 0.2 is exact.
  static constexpr int64_t kUnit = 1000;

  void advance(uint64_t now_ns);

  int64_t deposit_units_;
  int64_t reserve_units_;
  uint64_t slice_ns_;
  std::array<int64_t, kSlices> slices_{};  // net units put in during each slice
  int64_t sum_ = 0;                        // over slices_
  uint64_t current_ = 0;                   // now_ns / slice_ns_ at the last call
  bool started_ = false;
};

}  // namespace sluice::proxy
