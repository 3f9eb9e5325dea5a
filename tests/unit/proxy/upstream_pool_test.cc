#include "proxy/upstream_pool.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config/units.h"
#include "tests/unit/loop_fixture.h"

namespace sluice::proxy {
namespace {

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
  return u;
}

struct Waiter final : QueueWaiter {
  UpstreamPool* pool = nullptr;
  std::vector<std::string>* log = nullptr;
  std::string name;
  std::optional<size_t> got;
  void on_slot_available() override {
    got = pool->acquire(0);
    log->push_back(name + (got ? "+" : "-"));
  }
};

TEST_CASE_METHOD(test::LoopFixture, "upstream pool: in-flight is exact at the cap",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({2, 1}));
  int taken = 0;
  while (pool.acquire(0)) ++taken;
  CHECK(taken == 3);
  CHECK(pool.in_flight(0) == 2);
  CHECK(pool.in_flight(1) == 1);
  pool.release(1);
  CHECK(pool.acquire(0) == std::optional<size_t>(1));
}

TEST_CASE_METHOD(test::LoopFixture, "upstream pool: a freed slot goes to the oldest waiter",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({1}));
  REQUIRE(pool.acquire(0));
  std::vector<std::string> log;
  Waiter a, b, c;
  for (auto* w : {&a, &b, &c}) {
    w->pool = &pool;
    w->log = &log;
    pool.enqueue(w);
  }
  a.name = "a";
  b.name = "b";
  c.name = "c";
  CHECK(pool.queue_length() == 3);

  pool.dequeue(&b);  // b's client went away
  CHECK_FALSE(b.queued());
  CHECK(pool.queue_length() == 2);

  pool.release(0);
  CHECK(log == std::vector<std::string>{"a+"});
  CHECK(pool.in_flight(0) == 1);
  pool.release(0);
  CHECK(log == std::vector<std::string>{"a+", "c+"});
  CHECK(pool.queue_length() == 0);
  pool.release(0);
  CHECK(pool.in_flight(0) == 0);
}

TEST_CASE_METHOD(test::LoopFixture, "upstream pool: the queue is full at max_length",
                 "[upstream_pool]") {
  UpstreamPool pool(loop(), upstream({1}, 2));
  std::vector<std::string> log;
  Waiter a, b;
  a.pool = b.pool = &pool;
  a.log = b.log = &log;
  CHECK_FALSE(pool.queue_full());
  pool.enqueue(&a);
  pool.enqueue(&b);
  CHECK(pool.queue_full());
  pool.dequeue(&a);
  pool.dequeue(&b);
  CHECK_FALSE(pool.queue_full());
}

}  // namespace
}  // namespace sluice::proxy
