#include "proxy/adaptive_limit.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <queue>
#include <vector>

namespace sluice::proxy {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;

// ---------------------------------------------------------------------------
// A deterministic discrete-event simulation of sluice in front of a
// thread-per-request app: T threads, each serving one request for about S
// (±10 % from a seeded generator), a FIFO of Q more inside the app, and a
// 503 for a request that finds both full. sluice keeps exactly limit()
// requests outstanding (its own queue never empties), as under overload.

struct Sim {
  uint32_t threads = 8;
  uint32_t app_queue = 2;
  uint64_t service_ns = 5 * kMs;
  // Service time over time, for slowdowns; empty = service_ns throughout.
  std::function<uint64_t(uint64_t now_ns)> service_at;
  uint64_t network_ns = 200'000;  // both ways together
  uint64_t refusal_ns = 300'000;  // the app's time to answer 503
  uint64_t duration_ns = 60 * kSec;
  uint64_t seed = 1;
  AdaptiveLimitOptions options;
};

struct Outcome {
  uint32_t final_learned = 0;
  uint32_t lowest = UINT32_MAX;  // of limit(), probes included
  uint32_t highest = 0;
  uint64_t last_outside_ns = 0;  // last instant learned() was outside T ±25 %
  uint64_t probing_ns = 0;       // time spent probing
  double mean_learned_last_half = 0;  // time-weighted
  uint64_t completed_last_half = 0;
  uint64_t refused_last_half = 0;
  uint64_t refused = 0;
  uint32_t changes_reported = 0;
  uint32_t changes_seen = 0;
  // learned() at chosen instants, for the slowdown test.
  std::vector<std::pair<uint64_t, uint32_t>> trace;
};

struct Request {
  uint64_t sent_ns;
  uint32_t in_flight;
};

enum class Kind : uint8_t { ServiceDone, Response, Refusal };

struct Event {
  uint64_t at_ns;
  uint64_t seq;  // FIFO among equal times, so runs are reproducible
  Kind kind;
  Request request;
  bool operator>(const Event& other) const { return at_ns != other.at_ns ? at_ns > other.at_ns : seq > other.seq; }
};

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Outcome simulate(const Sim& sim, uint64_t trace_every_ns = 0) {
  AdaptiveLimit limit(sim.options);
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::deque<Request> app_fifo;
  uint32_t busy_threads = 0;
  uint32_t outstanding = 0;
  uint64_t seq = 0;
  uint64_t rng = sim.seed;
  Outcome out;
  const double band_lo = 0.75 * sim.threads;
  const double band_hi = 1.25 * sim.threads;

  auto service = [&](uint64_t now) {
    const uint64_t s = sim.service_at ? sim.service_at(now) : sim.service_ns;
    const double jitter = 0.9 + 0.2 * static_cast<double>(splitmix(rng) >> 11) / 9007199254740992.0;
    return static_cast<uint64_t>(static_cast<double>(s) * jitter);
  };
  auto start_service = [&](uint64_t now, Request r) {
    ++busy_threads;
    events.push({now + service(now), seq++, Kind::ServiceDone, r});
  };
  auto send = [&](uint64_t now) {
    ++outstanding;
    Request r{now, outstanding};
    // The request reaches the app at once and the whole network time is
    // added to the way back: one event fewer, and the same timings seen
    // from either end, shifted by half the network time.
    if (busy_threads < sim.threads)
      start_service(now, r);
    else if (app_fifo.size() < sim.app_queue)
      app_fifo.push_back(r);
    else
      events.push({now + sim.refusal_ns + sim.network_ns, seq++, Kind::Refusal, r});
  };
  auto fill = [&](uint64_t now) {
    while (outstanding < limit.limit()) send(now);
  };

  uint64_t now = 0;
  uint64_t next_trace = 0;
  out.lowest = out.highest = limit.limit();
  fill(now);
  while (!events.empty()) {
    Event e = events.top();
    events.pop();
    const uint64_t before = now;
    now = e.at_ns;
    if (now > sim.duration_ns) break;
    if (limit.probing()) out.probing_ns += now - before;
    if (before >= sim.duration_ns / 2)
      out.mean_learned_last_half += static_cast<double>(limit.learned()) * static_cast<double>(now - before);
    while (trace_every_ns && next_trace <= now) {
      out.trace.emplace_back(next_trace, limit.learned());
      next_trace += trace_every_ns;
    }
    const bool last_half = now >= sim.duration_ns / 2;
    const uint32_t limit_before = limit.limit();
    bool reported = false;
    switch (e.kind) {
      case Kind::ServiceDone:
        --busy_threads;
        if (!app_fifo.empty()) {
          start_service(now, app_fifo.front());
          app_fifo.pop_front();
        }
        events.push({now + sim.network_ns, seq++, Kind::Response, e.request});
        continue;
      case Kind::Response:
        --outstanding;
        out.completed_last_half += last_half;
        reported = limit.on_sample(now, now - e.request.sent_ns, e.request.in_flight, true);
        break;
      case Kind::Refusal:
        --outstanding;
        ++out.refused;
        out.refused_last_half += last_half;
        reported = limit.on_overload(now, now - e.request.sent_ns, e.request.in_flight);
        break;
    }
    // The return value must say exactly whether limit() moved.
    out.changes_seen += limit.limit() != limit_before;
    out.changes_reported += reported;
    out.lowest = std::min(out.lowest, limit.limit());
    out.highest = std::max(out.highest, limit.limit());
    const double learned = limit.learned();
    if (learned < band_lo || learned > band_hi) out.last_outside_ns = now;
    fill(now);
  }
  out.final_learned = limit.learned();
  out.mean_learned_last_half /= static_cast<double>(now - sim.duration_ns / 2);
  return out;
}

bool report_wanted() { return std::getenv("ADAPTIVE_LIMIT_REPORT") != nullptr; }

// ---------------------------------------------------------------------------

TEST_CASE("adaptive limit: converges to the app's thread count", "[adaptive_limit]") {
  struct Start {
    const char* name;
    uint32_t initial_per_thread;  // 0: start at 1
    bool deep_app_queue;          // 1000 places: the app never refuses, it only gets slower
  };
  const Start starts[] = {{"below", 0, false}, {"above", 4, false}, {"above, deep queue", 4, true}};
  const uint32_t thread_counts[] = {4, 8, 16, 32};
  const uint64_t service_times[] = {5 * kMs, 50 * kMs};
  for (uint32_t t : thread_counts) {
    for (uint64_t s : service_times) {
      for (const Start& start : starts) {
        Sim sim;
        sim.threads = t;
        sim.app_queue = start.deep_app_queue ? 1000 : std::max<uint32_t>(2, t / 4);
        sim.service_ns = s;
        sim.seed = t * 1000 + s / kMs + start.initial_per_thread + start.deep_app_queue;
        sim.options.min = 1;
        sim.options.max = 4 * t;
        sim.options.initial = start.initial_per_thread == 0 ? 1 : start.initial_per_thread * t;
        const Outcome out = simulate(sim);

        const double converged_s = static_cast<double>(out.last_outside_ns) / kSec;
        const double probing_share = static_cast<double>(out.probing_ns) / static_cast<double>(sim.duration_ns);
        // The app can finish T requests per S; the last 30 s should see nearly that.
        const double ideal = 30.0 * t * kSec / static_cast<double>(s);
        const double throughput = static_cast<double>(out.completed_last_half) / ideal;
        if (report_wanted()) {
          std::printf("T=%2u S=%2llums Q=%4u start=%3u: in band from %5.2fs, last 30s mean %5.1f (%+5.1f%%), "
                      "final %2u, limit() %u..%u, probing %4.1f%%, throughput %5.1f%% of T/S, 503s %llu "
                      "(last 30s: %llu)\n",
                      t, static_cast<unsigned long long>(s / kMs), sim.app_queue, sim.options.initial, converged_s,
                      out.mean_learned_last_half, 100.0 * (out.mean_learned_last_half - t) / t, out.final_learned,
                      out.lowest, out.highest, 100 * probing_share, 100 * throughput,
                      static_cast<unsigned long long>(out.refused),
                      static_cast<unsigned long long>(out.refused_last_half));
        }
        INFO("T=" << t << " S=" << s / kMs << "ms start " << start.name << " (" << sim.options.initial
                  << "): final " << out.final_learned << ", in band from " << converged_s << "s, last 30 s mean "
                  << out.mean_learned_last_half << ", limit() " << out.lowest << ".." << out.highest << ", throughput "
                  << throughput << " of T/S, probing " << probing_share);
        CHECK(out.final_learned >= 0.75 * t);
        CHECK(out.final_learned <= 1.25 * t);
        // In band for good within the first half of the run.
        CHECK(converged_s < 30.0);
        CHECK(out.highest <= sim.options.max);
        CHECK(out.lowest >= sim.options.min);
        CHECK(throughput > 0.95);
        // A probe is 8 responses or more at half the limit: for 4 threads at
        // 50 ms, a few tenths of a second every 10 s or so.
        CHECK(probing_share < 0.05);
        CHECK(out.refused_last_half == 0);
        CHECK(out.changes_reported == out.changes_seen);
      }
    }
  }
}

TEST_CASE("adaptive limit: never above the configured ceiling", "[adaptive_limit]") {
  // The app could take 32, but max says 10: the limit climbs to 10 and stays.
  Sim sim;
  sim.threads = 32;
  sim.app_queue = 8;
  sim.duration_ns = 20 * kSec;
  sim.options.max = 10;
  sim.options.initial = 1;
  const Outcome out = simulate(sim);
  CHECK(out.highest == 10);
  CHECK(out.final_learned == 10);
  CHECK(out.refused == 0);
}

TEST_CASE("adaptive limit: a floor above the app's threads holds", "[adaptive_limit]") {
  Sim sim;
  sim.threads = 4;
  sim.app_queue = 2;
  sim.duration_ns = 20 * kSec;
  sim.options.min = 6;
  sim.options.max = 50;
  sim.options.initial = 50;
  const Outcome out = simulate(sim);
  CHECK(out.lowest == 6);  // 503s push it down to the floor and no further
  CHECK(out.final_learned == 6);
}

TEST_CASE("adaptive limit: recovers after a temporary slowdown", "[adaptive_limit]") {
  // The app (16 threads) takes three times as long for a while, then is
  // fast again. A short slowdown ends before a probe re-measures the no-load
  // RTT; a long one is re-measured while it lasts.
  const uint64_t lengths[] = {1500 * kMs, 10 * kSec};
  for (uint64_t s : {5 * kMs, 50 * kMs}) {
    for (uint64_t length : lengths) {
      Sim sim;
      sim.threads = 16;
      sim.app_queue = 4;
      sim.service_ns = s;
      sim.duration_ns = 40 * kSec;
      sim.options.max = 64;
      sim.options.initial = 1;
      sim.seed = 77 + s + length;
      const uint64_t slow_from = 20 * kSec;
      const uint64_t slow_until = slow_from + length;
      sim.service_at = [=](uint64_t now) { return now >= slow_from && now < slow_until ? 3 * s : s; };
      const Outcome out = simulate(sim, 10 * kMs);

      uint32_t before_lo = UINT32_MAX, before_hi = 0;  // over the 5 s before
      uint32_t lowest_during = UINT32_MAX;
      uint32_t at_end = 0;
      uint64_t last_outside_ns = 0;  // after the slowdown, outside 16 ±25 %
      for (auto [at, learned] : out.trace) {
        if (at >= slow_from - 5 * kSec && at < slow_from) {
          before_lo = std::min(before_lo, learned);
          before_hi = std::max(before_hi, learned);
        }
        if (at >= slow_from && at < slow_until) lowest_during = std::min(lowest_during, learned);
        if (at < slow_until) at_end = learned;
        if (at >= slow_until && (learned < 12 || learned > 20)) last_outside_ns = at;
      }
      const double recovery_s =
          last_outside_ns == 0 ? 0.0 : static_cast<double>(last_outside_ns + 10 * kMs - slow_until) / kSec;
      if (report_wanted()) {
        std::printf("slowdown S=%llums x3 for %.1fs, T=16: before %u..%u, lowest during %u, at its end %u, "
                    "back in band %.2fs after it ended, final %u\n",
                    static_cast<unsigned long long>(s / kMs), static_cast<double>(length) / kSec, before_lo,
                    before_hi, lowest_during, at_end, recovery_s, out.final_learned);
      }
      INFO("S=" << s / kMs << "ms for " << length / kMs << "ms: before " << before_lo << ".." << before_hi
                << ", lowest during " << lowest_during << ", at its end " << at_end << ", back in band "
                << recovery_s << "s after, final " << out.final_learned);
      CHECK(before_lo >= 12);
      CHECK(before_hi <= 20);
      // Latency tripled: the limiter cannot tell that from queueing at first,
      // so it backs off (else this test would not test recovery)...
      CHECK(lowest_during < before_lo);
      // ...and once the app is fast again it is back at the thread count.
      CHECK(recovery_s < 5.0);
      CHECK(out.final_learned >= 12);
      CHECK(out.final_learned <= 20);
    }
  }
}

// ---------------------------------------------------------------------------
// The rules one at a time.

TEST_CASE("adaptive limit: starts at initial within the bounds", "[adaptive_limit]") {
  CHECK(AdaptiveLimit({.min = 1, .max = 100, .initial = 8}).limit() == 8);
  CHECK(AdaptiveLimit({.min = 1, .max = 5, .initial = 8}).limit() == 5);
  CHECK(AdaptiveLimit({.min = 10, .max = 100, .initial = 8}).limit() == 10);
  CHECK(AdaptiveLimit({.min = 0, .max = 0, .initial = 0}).limit() == 1);  // never 0: a server must stay usable
}

TEST_CASE("adaptive limit: grows while latency stays flat and the limit binds", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 10, .window_samples = 10});
  uint64_t now = 10 * kSec;
  for (int i = 0; i < 9; ++i) CHECK_FALSE(limit.on_sample(now += kMs, 5 * kMs, 10, true));
  CHECK(limit.on_sample(now += kMs, 5 * kMs, 10, true));  // a window: +1 (10 % of 10)
  CHECK(limit.limit() == 11);
  CHECK(limit.no_load_rtt_ns() == 5 * kMs);
  // Responses to requests sent before the change are left out of the next window.
  for (int i = 0; i < 20; ++i) CHECK_FALSE(limit.on_sample(now, 5 * kMs, 11, true));
  CHECK(limit.limit() == 11);
}

TEST_CASE("adaptive limit: a limit that is never reached does not grow", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 10, .window_samples = 10});
  uint64_t now = 10 * kSec;
  for (int i = 0; i < 100; ++i) limit.on_sample(now += kMs, 5 * kMs, 3, true);
  CHECK(limit.limit() == 10);
}

TEST_CASE("adaptive limit: queueing latency brings it to capacity plus headroom", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 20, .window_samples = 20});
  uint64_t now = 10 * kSec;
  // A no-load reference: 20 in flight at 10 ms, and the limit grows to 22.
  for (int i = 0; i < 20; ++i) limit.on_sample(now += kMs, 10 * kMs, 20, true);
  REQUIRE(limit.limit() == 22);
  // 22 in flight now take 22/16 x 10 ms: a 16-thread app with 6 queued.
  now += 100 * kMs;
  for (int i = 0; i < 22; ++i) limit.on_sample(now += kMs, 13'750'000, 22, true);
  CHECK(limit.learned() == 17);  // 16 x 1.1
  // The no-load figure was taken at 20 in flight, never below: a probe at
  // half the limit checks it at once.
  CHECK(limit.probing());
  CHECK(limit.limit() == 8);
}

TEST_CASE("adaptive limit: 503 from a busy app backs off once per round trip", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 2, .max = 100, .initial = 40});
  uint64_t now = 10 * kSec;
  CHECK(limit.on_overload(now, kMs, 40));
  CHECK(limit.limit() == 30);
  // Sent before that decrease: already accounted for.
  CHECK_FALSE(limit.on_overload(now + kMs, 5 * kMs, 40));
  CHECK(limit.limit() == 30);
  // Sent after it: the app is still refusing.
  CHECK(limit.on_overload(now + 3 * kMs, kMs, 30));
  CHECK(limit.limit() == 22);
  for (int i = 0; i < 50; ++i) limit.on_overload(now += 10 * kMs, kMs, limit.limit());
  CHECK(limit.limit() == 2);  // the floor
  CHECK_FALSE(limit.on_overload(now += 10 * kMs, kMs, 2));
}

TEST_CASE("adaptive limit: no growth back to a refused level for a probe interval", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 10, .window_samples = 10, .probe_interval_ns = kSec});
  uint64_t now = 10 * kSec;
  // Refused with 12 in flight: 12 is too many for this app, for now.
  CHECK(limit.on_overload(now, kMs, 12));
  CHECK(limit.limit() == 7);
  // Latency stays flat, so the limit climbs, but not past 11 for a second.
  uint32_t highest = 0;
  while (now < 10 * kSec + 900 * kMs) {
    limit.on_sample(now += kMs, 10 * kMs, limit.limit(), true);
    highest = std::max(highest, limit.learned());
  }
  CHECK(highest == 11);
  // Then the app may have grown: the climb goes on.
  while (now < 12 * kSec) limit.on_sample(now += kMs, 10 * kMs, limit.limit(), true);
  CHECK(limit.learned() > 11);
}

TEST_CASE("adaptive limit: failures carry no latency and change nothing", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 10, .window_samples = 10});
  uint64_t now = 10 * kSec;
  for (int i = 0; i < 100; ++i) CHECK_FALSE(limit.on_sample(now += kMs, 30 * kSec, 10, false));
  CHECK(limit.limit() == 10);
  CHECK(limit.no_load_rtt_ns() == 0);
}

TEST_CASE("adaptive limit: a probe halves the limit, re-measures and restores it", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 20, .window_samples = 20, .probe_interval_ns = kSec});
  uint64_t now = 10 * kSec;
  // Windows of 20 samples at 10 ms with the limit reached: the limit grows.
  while (now < 11 * kSec + 500 * kMs && !limit.probing()) {
    limit.on_sample(now += kMs, 10 * kMs, limit.limit(), true);
  }
  REQUIRE(limit.probing());
  const uint32_t learned = limit.learned();
  CHECK(limit.limit() == learned / 2);
  // During the probe the app answers in 20 ms (it has become slower).
  // Responses sent with more in flight than the probe limit do not count.
  now += 50 * kMs;
  for (int i = 0; i < 100; ++i) limit.on_sample(now += kMs, 20 * kMs, learned, true);
  CHECK(limit.probing());
  bool ended = false;
  for (int i = 0; i < 200 && !ended; ++i) ended = limit.on_sample(now += kMs, 20 * kMs, learned / 2, true);
  CHECK(ended);
  CHECK_FALSE(limit.probing());
  CHECK(limit.limit() == learned);
  CHECK(limit.no_load_rtt_ns() == 20 * kMs);  // replaced, not the old, lower 10 ms
}

TEST_CASE("adaptive limit: set_bounds clamps what was learned", "[adaptive_limit]") {
  AdaptiveLimit limit({.min = 1, .max = 100, .initial = 40});
  CHECK(limit.set_bounds(1, 16));
  CHECK(limit.limit() == 16);
  CHECK_FALSE(limit.set_bounds(1, 200));  // keeps 16 until it learns more
  CHECK(limit.limit() == 16);
  CHECK(limit.set_bounds(20, 200));
  CHECK(limit.limit() == 20);
}

}  // namespace
}  // namespace sluice::proxy
