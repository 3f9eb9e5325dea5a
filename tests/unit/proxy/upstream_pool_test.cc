#include "proxy/upstream_pool.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "config/units.h"
#include "core/loop.h"
#include "core/uv_handle.h"
#include "tests/unit/loop_fixture.h"

namespace sluice::proxy {
namespace {

using namespace std::chrono_literals;

config::Upstream upstream(std::vector<uint32_t> caps, uint32_t queue_len = 10) {
  config::Upstream u;
  u.name = "app";
  for (size_t i = 0; i < caps.size(); ++i) {
    config::Server s;
    s.address = config::parse_address("127.0.0.1:" + std::to_string(5001 + i)).value();
    s.max_concurrent = caps[i];
    u.servers.push_back(s);
  }
  u.queue.max_length = queue_len;
  u.queue.mode = config::QueueMode::Fifo;
  u.slow_start = 0s;
  return u;
}

UpstreamServer* take(UpstreamPool& pool, TriedSet tried = 0) { return pool.acquire(tried).server; }

// Letters about waiters arrive through the loop's inbox: run the loop to
// deliver them.
struct PoolFixture : test::LoopFixture {
  std::unique_ptr<WaiterInbox> inbox = WaiterInbox::create(loop()).value();
  void deliver() { uv_run(loop(), UV_RUN_NOWAIT); }
};

struct Waiter final : QueueWaiter {
  UpstreamPool* pool = nullptr;
  std::vector<std::string>* log = nullptr;
  std::string name;
  UpstreamServer* got = nullptr;
  std::optional<ShedReason> shed;
  void on_slot_granted(UpstreamServer* server, uint32_t, size_t) override {
    got = server;
    log->push_back(name + "+");
  }
  void on_shed(ShedReason r) override {
    shed = r;
    log->push_back(name + "!");
  }
};

TEST_CASE_METHOD(PoolFixture, "upstream pool: in-flight is exact at the cap",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({2, 1}));
  std::vector<UpstreamServer*> taken;
  while (UpstreamServer* s = take(pool)) taken.push_back(s);
  CHECK(taken.size() == 3);
  CHECK(pool.in_flight(0) == 2);
  CHECK(pool.in_flight(1) == 1);
  UpstreamServer* second = &const_cast<UpstreamServer&>(pool.server(1));
  pool.release(second, Outcome::Neutral);
  CHECK(take(pool) == second);
  CHECK(take(pool) == nullptr);
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: a freed slot goes to the oldest waiter",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({1}));
  UpstreamServer* s = take(pool);
  REQUIRE(s != nullptr);
  std::vector<std::string> log;
  Waiter a, b, c;
  a.name = "a";
  b.name = "b";
  c.name = "c";
  for (auto* w : {&a, &b, &c}) {
    w->pool = &pool;
    w->log = &log;
    CHECK_FALSE(pool.admit(w, config::Priority::Normal, 0).has_value());
  }
  CHECK(pool.queue_length() == 3);

  pool.leave(&b);  // b's client went away
  CHECK(pool.queue_length() == 2);

  pool.release(s, Outcome::Success, 1'000'000, 1);
  // The slot is a's from the moment it was freed, before a hears of it.
  CHECK(pool.in_flight(0) == 1);
  CHECK(take(pool) == nullptr);
  CHECK(log.empty());
  deliver();
  CHECK(log == std::vector<std::string>{"a+"});
  CHECK(a.got == s);
  pool.release(a.got, Outcome::Success, 1'000'000, 1);
  deliver();
  CHECK(log == std::vector<std::string>{"a+", "c+"});
  CHECK(pool.queue_length() == 0);
  pool.release(c.got, Outcome::Success, 1'000'000, 1);
  CHECK(pool.in_flight(0) == 0);
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: a full queue sheds, a higher class evicts",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({1}, 2));
  REQUIRE(take(pool) != nullptr);
  std::vector<std::string> log;
  Waiter low, normal, normal2, high;
  for (auto* w : {&low, &normal, &normal2, &high}) {
    w->pool = &pool;
    w->log = &log;
  }
  low.name = "low";
  high.name = "high";
  CHECK_FALSE(pool.admit(&low, config::Priority::Low, 0).has_value());
  CHECK_FALSE(pool.admit(&normal, config::Priority::Normal, 0).has_value());
  // Full: a normal request makes room by evicting the low one.
  CHECK_FALSE(pool.admit(&normal2, config::Priority::Normal, 0).has_value());
  deliver();
  CHECK(low.shed == std::optional<ShedReason>(ShedReason::Priority));
  CHECK(pool.queue_length() == 2);
  // A high request evicts the oldest normal one.
  CHECK_FALSE(pool.admit(&high, config::Priority::High, 0).has_value());
  deliver();
  CHECK(normal.shed == std::optional<ShedReason>(ShedReason::Priority));
  CHECK_FALSE(normal2.shed.has_value());
  // A normal request finds nobody below it: queue_full.
  Waiter late;
  late.pool = &pool;
  late.log = &log;
  CHECK(pool.admit(&late, config::Priority::Normal, 0) ==
        std::optional<ShedReason>(ShedReason::QueueFull));
  pool.leave(&normal2);
  pool.leave(&high);
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: a predicted wait over budget is shed at once",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({2}, 100));
  UpstreamServer* s = take(pool);
  UpstreamServer* s2 = take(pool);
  REQUIRE(s2 != nullptr);
  // One completion teaches a service time of 100 ms.
  pool.release(s, Outcome::Success, 100'000'000, 1);
  REQUIRE(take(pool) != nullptr);
  REQUIRE(pool.service_time_ns() == 100'000'000);
  std::vector<std::string> log;
  std::vector<Waiter> ws(6);
  for (auto& w : ws) {
    w.pool = &pool;
    w.log = &log;
  }
  // Budget 120 ms with 2 slots at 100 ms each: the first two fit (50 and
  // 100 ms predicted), the third would wait 150 ms.
  CHECK_FALSE(pool.admit(&ws[0], config::Priority::Normal, 120'000'000).has_value());
  CHECK_FALSE(pool.admit(&ws[1], config::Priority::Normal, 120'000'000).has_value());
  CHECK(pool.admit(&ws[2], config::Priority::Normal, 120'000'000) ==
        std::optional<ShedReason>(ShedReason::Deadline));
  // Without a budget of its own, the queue timeout (5 s) is the budget.
  CHECK_FALSE(pool.admit(&ws[3], config::Priority::Normal, 0).has_value());
  // A high-priority request is predicted ahead of all normal ones.
  CHECK_FALSE(pool.admit(&ws[4], config::Priority::High, 60'000'000).has_value());
  for (auto& w : ws) pool.leave(&w);
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: busy lowers the limit, successes restore it",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({4}));
  std::vector<UpstreamServer*> held;
  for (int i = 0; i < 4; ++i) held.push_back(take(pool));
  REQUIRE(held.back() != nullptr);
  // The app turned away its 4th concurrent request: it holds 3.
  pool.release(held.back(), Outcome::Overload);
  held.pop_back();
  CHECK(pool.limit(0) == 3);
  CHECK(pool.health(0) == ServerHealth::Healthy);
  CHECK(take(pool) == nullptr);  // 3 in flight, limit 3
  // Three successes at limit 3 raise it by one: back to the configured 4.
  for (UpstreamServer* s : held) pool.release(s, Outcome::Success, 1'000'000, 3);
  CHECK(pool.limit(0) == 4);
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: failures eject with a growing back-off",
                 "[upstream_pool]") {
  auto cfg = upstream({0, 0});
  cfg.passive_health.failures = 2;
  cfg.passive_health.ejection = 10s;
  UpstreamPool pool(loop(), cfg);
  auto* first = &const_cast<UpstreamServer&>(pool.server(0));
  for (int i = 0; i < 2; ++i) {
    // Round robin alternates; fail only the first server's requests.
    UpstreamServer* s = take(pool);
    if (s != first) {
      pool.release(s, Outcome::Success, 1000, 1);
      s = take(pool);
    }
    REQUIRE(s == first);
    pool.release(s, Outcome::Failure);
  }
  CHECK(pool.health(0) == ServerHealth::Ejected);
  CHECK(first->ejections() == 1);
  CHECK_FALSE(pool.all_down());
  // While ejected, every pick goes to the other server.
  for (int i = 0; i < 4; ++i) {
    UpstreamServer* s = take(pool);
    CHECK(s == &pool.server(1));
    pool.release(s, Outcome::Success, 1000, 1);
  }
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: the last healthy server is never ejected",
                 "[upstream_pool]") {
  auto cfg = upstream({0});
  cfg.passive_health.failures = 1;
  UpstreamPool pool(loop(), cfg);
  for (int i = 0; i < 3; ++i) pool.release(take(pool), Outcome::Failure);
  CHECK(pool.health(0) == ServerHealth::Healthy);
  CHECK_FALSE(pool.all_down());
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: reload keeps state of servers that stay",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({2, 2}));
  UpstreamServer* a = take(pool);
  UpstreamServer* b = take(pool);
  REQUIRE(a != b);
  const std::string a_addr = a->address();
  // New list: a third server first, server 0 kept (moved to the end),
  // server 1 dropped.
  auto next = upstream({2, 2});
  next.servers[1] = next.servers[0];
  next.servers[0].address = config::parse_address("127.0.0.1:5009").value();
  next.servers[1].max_concurrent = 5;
  pool.reconfigure(next);
  REQUIRE(pool.size() == 2);
  CHECK(pool.server(1).address() == a_addr);
  CHECK(&pool.server(1) == a);  // the same object: counts and health kept
  CHECK(pool.in_flight(1) == 1);
  CHECK(pool.limit(1) == 5);
  CHECK(pool.in_flight(0) == 0);
  CHECK_FALSE(pool.quiet());
  // The dropped server's request finishes later; its slot is given back to
  // the retired server, not to anyone in the new list.
  pool.release(b, Outcome::Success, 1000, 1);
  pool.release(a, Outcome::Success, 1000, 1);
  CHECK(pool.quiet());
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: Retry-After follows the drain rate",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({1}, 1000));
  // No completions observed yet: the queue timeout.
  CHECK(pool.retry_after() == 5);
  // About 40 completions in 0.26 s: ~150 per second.
  for (int i = 0; i < 40; ++i) pool.release(take(pool), Outcome::Success, 1000, 1);
  std::this_thread::sleep_for(260ms);
  pool.release(take(pool), Outcome::Success, 1000, 1);
  const double rate = pool.drain_per_second();
  CHECK(rate > 100);
  CHECK(rate < 170);
  CHECK(pool.retry_after() == 1);  // an empty queue drains at once
  REQUIRE(take(pool) != nullptr);
  std::vector<std::string> log;
  std::vector<Waiter> ws(600);
  for (auto& w : ws) {
    w.pool = &pool;
    w.log = &log;
    REQUIRE_FALSE(pool.admit(&w, config::Priority::Normal, 0).has_value());
  }
  // 601 ahead at ~150 per second: about 4 s.
  CHECK(pool.retry_after() >= 3);
  CHECK(pool.retry_after() <= 6);
  for (auto& w : ws) pool.leave(&w);
}

TEST_CASE_METHOD(PoolFixture, "upstream pool: a waiter that leaves gives its granted slot back",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({1}));
  UpstreamServer* s = take(pool);
  REQUIRE(s != nullptr);
  std::vector<std::string> log;
  Waiter a;
  a.name = "a";
  a.pool = &pool;
  a.log = &log;
  REQUIRE_FALSE(pool.admit(&a, config::Priority::Normal, 0).has_value());
  pool.release(s, Outcome::Success, 1'000'000, 1);
  CHECK(pool.in_flight(0) == 1);  // taken for a, whose letter is on its way
  pool.leave(&a);                 // a's client left before the letter came
  CHECK(pool.in_flight(0) == 0);
  deliver();
  CHECK(log.empty());
  CHECK(take(pool) == s);
  pool.release(s, Outcome::Neutral);
}

// Requests from two loops, each on its own thread, through one pool: each
// client takes a slot (or waits for one), holds it for a loop iteration,
// gives it back, and starts again. The cap holds across both loops, every
// waiter is served, and no slot is lost.
struct Client final : QueueWaiter {
  UpstreamPool* pool = nullptr;
  std::atomic<int>* active = nullptr;
  std::atomic<int>* peak = nullptr;
  int target = 0;
  int done = 0;
  int sheds = 0;
  int granted = 0;
  UpstreamServer* held = nullptr;
  UvHandle<uv_timer_t> timer;

  void start(uv_loop_t* loop) {
    timer = UvHandle<uv_timer_t>::create(uv_timer_init, loop).value();
    timer->data = this;
    next();
  }
  void next() {
    if (done == target) {
      timer.close();
      return;
    }
    if (SlotGrant g = pool->acquire(0)) {
      hold(g.server);
      return;
    }
    if (pool->admit(this, config::Priority::Normal, 0)) {
      ++sheds;
      uv_timer_start(timer.get(), &Client::retry, 1, 0);
    }
  }
  void hold(UpstreamServer* s) {
    held = s;
    int now = active->fetch_add(1) + 1;
    int p = peak->load();
    while (now > p && !peak->compare_exchange_weak(p, now)) {
    }
    uv_timer_start(timer.get(), &Client::finish, 0, 0);
  }
  static void finish(uv_timer_t* t) {
    auto* self = static_cast<Client*>(t->data);
    self->active->fetch_sub(1);
    self->pool->release(std::exchange(self->held, nullptr), Outcome::Success, 100'000, 1);
    ++self->done;
    self->next();
  }
  static void retry(uv_timer_t* t) { static_cast<Client*>(t->data)->next(); }
  void on_slot_granted(UpstreamServer* s, uint32_t, size_t) override {
    ++granted;
    hold(s);
  }
  void on_shed(ShedReason) override {
    ++sheds;
    uv_timer_start(timer.get(), &Client::retry, 1, 0);
  }
};

TEST_CASE_METHOD(PoolFixture, "upstream pool: two loops share the cap and the queue",
                 "[upstream_pool]") {
  constexpr int kClients = 8;
  constexpr int kRounds = 300;
  UpstreamPool pool(loop(), upstream({3}, 100));
  std::atomic<int> active{0};
  std::atomic<int> peak{0};
  auto make = [&](std::vector<Client>& cs) {
    for (Client& c : cs) {
      c.pool = &pool;
      c.active = &active;
      c.peak = &peak;
      c.target = kRounds;
    }
  };
  auto finished = [](const std::vector<Client>& cs) {
    for (const Client& c : cs) {
      if (c.done != c.target) return false;
    }
    return true;
  };

  // The second loop; nothing in this thread touches Catch2.
  std::atomic<bool> other_done{false};
  std::atomic<int> other_granted{0};
  std::atomic<int> other_total{0};
  std::thread other([&] {
    Loop l;
    auto box = WaiterInbox::create(l.get()).value();
    std::vector<Client> cs(kClients);
    make(cs);
    for (Client& c : cs) c.start(l.get());
    auto tick = UvHandle<uv_timer_t>::create(uv_timer_init, l.get()).value();
    uv_timer_start(tick.get(), [](uv_timer_t*) {}, 10, 10);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!finished(cs) && std::chrono::steady_clock::now() < deadline) uv_run(l.get(), UV_RUN_ONCE);
    int g = 0, d = 0;
    for (const Client& c : cs) {
      g += c.granted;
      d += c.done;
    }
    other_granted = g;
    other_total = d;
    for (Client& c : cs) c.timer.close();
    tick.close();
    box.reset();
    l.close();
    other_done = true;
  });

  std::vector<Client> cs(kClients);
  make(cs);
  for (Client& c : cs) c.start(loop());
  bool ok = run_until([&] { return finished(cs) && other_done.load(); }, 30s);
  other.join();
  CHECK(ok);
  int granted = 0;
  for (const Client& c : cs) granted += c.granted;
  CHECK(peak.load() == 3);  // the cap, reached and never passed
  CHECK(other_total.load() == kClients * kRounds);
  // Both loops waited, and were served by slots freed on either.
  CHECK(granted > 0);
  CHECK(other_granted.load() > 0);
  CHECK(pool.in_flight(0) == 0);
  CHECK(pool.queue_length() == 0);
  for (Client& c : cs) c.timer.close();
}

}  // namespace
}  // namespace sluice::proxy
