#include "proxy/request_queue.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace sluice::proxy {
namespace {

using config::Priority;
using namespace std::chrono_literals;

constexpr uint64_t kMs = 1'000'000;

struct W final : QueueWaiter {
  explicit W(std::string n) : name(std::move(n)) {}
  std::string name;
  void on_slot_granted(UpstreamServer*, uint32_t, size_t) override {}
  void on_shed(ShedReason) override {}
};

config::Queue queue_cfg(config::QueueMode mode = config::QueueMode::Adaptive) {
  config::Queue q;
  q.max_length = 10;
  q.mode = mode;
  q.interval = 100ms;
  q.target = 20ms;
  return q;
}

std::vector<std::string> drain(RequestQueue& q, uint64_t now) {
  std::vector<std::string> out;
  while (QueueWaiter* w = q.pop(now)) out.push_back(static_cast<W*>(w)->name);
  return out;
}

TEST_CASE("request queue: first come first served while it drains", "[request_queue]") {
  RequestQueue q(queue_cfg());
  q.set_service_time(1 * kMs);
  W a("a"), b("b"), c("c");
  q.push(&a, Priority::Normal, 0);
  q.push(&b, Priority::Normal, 1 * kMs);
  q.push(&c, Priority::Normal, 2 * kMs);
  CHECK(q.size() == 3);
  CHECK_FALSE(q.overloaded(50 * kMs));
  CHECK(drain(q, 50 * kMs) == std::vector<std::string>{"a", "b", "c"});
  CHECK(q.empty());
}

TEST_CASE("request queue: a standing queue serves newest first", "[request_queue]") {
  RequestQueue q(queue_cfg());
  q.set_service_time(1 * kMs);
  W a("a"), b("b"), c("c");
  q.push(&a, Priority::Normal, 0);
  q.push(&b, Priority::Normal, 90 * kMs);
  q.push(&c, Priority::Normal, 95 * kMs);
  // Not empty since t=0: at t=100ms that is a whole interval.
  CHECK(q.overloaded(100 * kMs));
  CHECK(static_cast<W*>(q.pop(100 * kMs))->name == "c");
  CHECK(static_cast<W*>(q.pop(100 * kMs))->name == "b");
  CHECK(static_cast<W*>(q.pop(100 * kMs))->name == "a");
  // Once it has been empty, the clock starts again: FIFO.
  q.push(&a, Priority::Normal, 200 * kMs);
  q.push(&b, Priority::Normal, 201 * kMs);
  CHECK_FALSE(q.overloaded(250 * kMs));
  CHECK(drain(q, 250 * kMs) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("request queue: fifo mode never turns to LIFO", "[request_queue]") {
  RequestQueue q(queue_cfg(config::QueueMode::Fifo));
  W a("a"), b("b");
  q.push(&a, Priority::Normal, 0);
  q.push(&b, Priority::Normal, 1 * kMs);
  CHECK_FALSE(q.overloaded(10'000 * kMs));
  CHECK(drain(q, 10'000 * kMs) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("request queue: overloaded, nobody waits past target", "[request_queue]") {
  RequestQueue q(queue_cfg());
  q.set_service_time(1 * kMs);
  W a("a"), b("b"), c("c");
  q.push(&a, Priority::Normal, 0);
  q.push(&b, Priority::Normal, 85 * kMs);
  q.push(&c, Priority::Normal, 99 * kMs);
  ShedReason why = ShedReason::Count;
  // Before the interval has passed, waits are not trimmed.
  CHECK(q.next_expired(99 * kMs, why) == nullptr);
  // At 110ms: a waited 110ms and b 25ms (both past the 20ms target), c 11ms.
  CHECK(q.next_expired(110 * kMs, why) == &a);
  CHECK(why == ShedReason::Overload);
  CHECK(q.next_expired(110 * kMs, why) == &b);
  CHECK(q.next_expired(110 * kMs, why) == nullptr);
  CHECK(q.size() == 1);
  CHECK(c.queued());
  CHECK_FALSE(a.queued());
}

TEST_CASE("request queue: a client's own deadline", "[request_queue]") {
  RequestQueue q(queue_cfg(config::QueueMode::Fifo));
  W a("a"), b("b");
  q.push(&a, Priority::Normal, 0, 50 * kMs);
  q.push(&b, Priority::Normal, 0);
  ShedReason why = ShedReason::Count;
  CHECK(q.next_expired(49 * kMs, why) == nullptr);
  CHECK(q.next_expired(50 * kMs, why) == &a);
  CHECK(why == ShedReason::Deadline);
  CHECK(q.next_expired(5000 * kMs, why) == nullptr);  // b has none; the client's timer applies
}

TEST_CASE("request queue: higher classes first, lowest evicted first", "[request_queue]") {
  auto cfg = queue_cfg(config::QueueMode::Fifo);
  cfg.max_length = 3;
  RequestQueue q(cfg);
  q.set_service_time(1 * kMs);
  W low1("low1"), normal("normal"), low2("low2"), high("high"), high2("high2");
  q.push(&low1, Priority::Low, 0);
  q.push(&normal, Priority::Normal, 1);
  q.push(&low2, Priority::Low, 2);
  CHECK(q.full());
  CHECK(q.ahead_of(Priority::High, 3) == 0);
  CHECK(q.ahead_of(Priority::Normal, 3) == 1);
  CHECK(q.ahead_of(Priority::Low, 3) == 3);
  // A high request makes room by evicting the oldest low one.
  CHECK(q.evict_for(Priority::High) == &low1);
  q.push(&high, Priority::High, 3);
  // A low request cannot evict anyone.
  CHECK(q.evict_for(Priority::Low) == nullptr);
  // Another high one evicts the remaining low, then nothing is below normal.
  CHECK(q.evict_for(Priority::High) == &low2);
  q.push(&high2, Priority::High, 4);
  CHECK(q.evict_for(Priority::Normal) == nullptr);
  CHECK(drain(q, 5) == std::vector<std::string>{"high", "high2", "normal"});
}

TEST_CASE("request queue: the floors scale with the app's service time", "[request_queue]") {
  RequestQueue q(queue_cfg());
  W a("a"), b("b");
  q.push(&a, Priority::Normal, 0);
  q.push(&b, Priority::Normal, 250 * kMs);
  // Nothing measured yet: no evidence of overload, however long.
  CHECK_FALSE(q.overloaded(10'000 * kMs));
  // 300 ms per answer: a standing queue needs 4 x 300 ms, not 100 ms.
  q.set_service_time(300 * kMs);
  CHECK_FALSE(q.overloaded(1000 * kMs));
  CHECK(q.overloaded(1200 * kMs));
  // ...and the overload wait is one service time, not the 20 ms target.
  ShedReason why = ShedReason::Count;
  CHECK(q.next_expired(1200 * kMs, why) == &a);  // waited 1.2 s
  CHECK(q.next_expired(1200 * kMs, why) == &b);  // waited 950 ms
  q.push(&a, Priority::Normal, 1300 * kMs);
  q.push(&b, Priority::Normal, 2600 * kMs);
  CHECK(q.next_expired(2700 * kMs, why) == &a);
  CHECK(q.next_expired(2700 * kMs, why) == nullptr);  // b waited 100 ms < 300 ms
}

TEST_CASE("request queue: removing from the middle keeps order", "[request_queue]") {
  RequestQueue q(queue_cfg());
  W a("a"), b("b"), c("c");
  q.push(&a, Priority::Normal, 0);
  q.push(&b, Priority::Normal, 1);
  q.push(&c, Priority::Normal, 2);
  q.remove(&b);
  q.remove(&b);  // idempotent
  CHECK(q.size() == 2);
  CHECK(drain(q, 3) == std::vector<std::string>{"a", "c"});
}

}  // namespace
}  // namespace sluice::proxy
