#include "proxy/retry_budget.h"

#include <catch2/catch.hpp>

#include <deque>

namespace sluice::proxy {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;

// Offers a retry every millisecond and, if requests_per_second > 0, sends
// that many requests a second, from `from` to `to`; returns the retries
// allowed, and the most allowed within any window of `ttl`.
struct Run {
  uint64_t allowed = 0;
  uint64_t most_in_ttl = 0;
};

Run offer(RetryBudget& budget, uint64_t from, uint64_t to, uint32_t requests_per_second, uint64_t ttl = 10 * kSec) {
  Run run;
  std::deque<uint64_t> recent;  // times of allowed retries within ttl
  const uint64_t request_every = requests_per_second ? kSec / requests_per_second : 0;
  uint64_t next_request = from;
  for (uint64_t now = from; now < to; now += kMs) {
    while (request_every && next_request <= now) {
      budget.deposit(next_request);
      next_request += request_every;
    }
    if (budget.try_withdraw(now)) {
      ++run.allowed;
      recent.push_back(now);
    }
    while (!recent.empty() && recent.front() + ttl <= now) recent.pop_front();
    run.most_in_ttl = std::max<uint64_t>(run.most_in_ttl, recent.size());
  }
  return run;
}

TEST_CASE("retry budget: without traffic, 10 retries a second", "[retry_budget]") {
  RetryBudget budget;
  const uint64_t start = 1000 * kSec;
  CHECK(budget.available(start) == 100);  // 10/s over the 10 s window
  const Run run = offer(budget, start, start + 60 * kSec, 0);
  // 100 at once, then 100 more each time the spent ones are 10 s old.
  CHECK(run.allowed == 600);
  CHECK(run.most_in_ttl == 100);
}

TEST_CASE("retry budget: 100 requests a second allow about 20 + 10 retries a second", "[retry_budget]") {
  RetryBudget budget;
  const uint64_t start = 1000 * kSec;
  // Let the window fill with deposits, then measure 30 s of steady state.
  offer(budget, start, start + 20 * kSec, 100);
  const Run run = offer(budget, start + 20 * kSec, start + 50 * kSec, 100);
  INFO("allowed " << run.allowed << " in 30 s, at most " << run.most_in_ttl << " in 10 s");
  CHECK(run.allowed >= 30 * 30 * 9 / 10);
  CHECK(run.allowed <= 30 * 30 * 11 / 10);
  // 200 earned plus the reserve of 100 within any 10 s, and a slice more at
  // most because deposits expire a slice at a time.
  CHECK(run.most_in_ttl <= 300 + 20);
}

TEST_CASE("retry budget: deposits expire after the window", "[retry_budget]") {
  const uint64_t start = 1000 * kSec;
  RetryBudget budget;
  for (int i = 0; i < 1000; ++i) budget.deposit(start);  // earns 200 retries
  CHECK(budget.available(start) == 300);
  CHECK(budget.available(start + 9 * kSec) == 300);
  CHECK(budget.available(start + 10 * kSec) == 100);  // only the reserve left
  CHECK(budget.available(start + 3600 * kSec) == 100);

  // Withdrawals expire the same way: spent at once, back 10 s later.
  RetryBudget spent;
  for (int i = 0; i < 1000; ++i) spent.deposit(start);
  int taken = 0;
  while (spent.try_withdraw(start + 5 * kSec)) ++taken;
  CHECK(taken == 300);
  CHECK(spent.available(start + 9 * kSec) == 0);
  // The deposits of `start` expire at +10 s, the withdrawals of +5 s at +15 s.
  CHECK(spent.available(start + 10 * kSec) == 0);
  CHECK(spent.available(start + 15 * kSec) == 100);
}

TEST_CASE("retry budget: the ratio and the floor are what is configured", "[retry_budget]") {
  const uint64_t start = 1000 * kSec;
  RetryBudget none({.ratio = 0, .min_per_second = 0});
  for (int i = 0; i < 1000; ++i) none.deposit(start);
  CHECK_FALSE(none.try_withdraw(start));

  RetryBudget half({.ratio = 0.5, .min_per_second = 0, .ttl_ns = 2 * kSec});
  for (int i = 0; i < 10; ++i) half.deposit(start);
  CHECK(half.available(start) == 5);
  CHECK(half.available(start + 2 * kSec) == 0);

  RetryBudget floor_only({.ratio = 0, .min_per_second = 3, .ttl_ns = 2 * kSec});
  CHECK(floor_only.available(start) == 6);
}

TEST_CASE("retry budget: a clock that goes back or jumps far is harmless", "[retry_budget]") {
  RetryBudget budget;
  const uint64_t start = 1000 * kSec;
  for (int i = 0; i < 100; ++i) budget.deposit(start + 5 * kSec);
  CHECK(budget.available(start) == 120);  // counted into the current slice
  for (int i = 0; i < 100; ++i) budget.deposit(start);
  CHECK(budget.available(start + 5 * kSec) == 140);
  CHECK(budget.available(start + 1'000'000 * kSec) == 100);
}

}  // namespace
}  // namespace sluice::proxy
