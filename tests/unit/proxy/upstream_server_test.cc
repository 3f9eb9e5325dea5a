#include "proxy/upstream_server.h"

#include <catch2/catch.hpp>

#include "config/units.h"

namespace sluice::proxy {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kS = 1'000'000'000;

config::Upstream upstream_cfg() {
  config::Upstream u;
  u.passive_health.failures = 2;
  u.passive_health.ejection = 10s;
  u.passive_health.max_ejection = 35s;
  u.slow_start = 10s;
  return u;
}

config::Server server_cfg(uint32_t cap, uint32_t weight = 10) {
  config::Server s;
  s.address = config::parse_address("127.0.0.1:5001").value();
  s.max_concurrent = cap;
  s.weight = weight;
  return s;
}

TEST_CASE("upstream server: ejection doubles in a row, up to max_ejection", "[upstream_server]") {
  UpstreamServer s(server_cfg(20), upstream_cfg());
  uint64_t now = 100 * kS;
  CHECK_FALSE(s.on_failure(now));
  CHECK(s.on_failure(now));  // the second in a row
  CHECK(s.health() == ServerHealth::Ejected);
  CHECK_FALSE(s.load().healthy);
  CHECK(s.refresh(now + 9 * kS));  // still out, still changing
  CHECK_FALSE(s.load().healthy);
  s.refresh(now + 10 * kS);
  CHECK(s.load().healthy);
  // On probation: one failure ejects again, for twice as long.
  now += 10 * kS;
  CHECK(s.on_failure(now));
  s.refresh(now + 19 * kS);
  CHECK_FALSE(s.load().healthy);
  s.refresh(now + 20 * kS);
  CHECK(s.load().healthy);
  // A third time would be 40 s: capped at 35 s.
  now += 20 * kS;
  CHECK(s.on_failure(now));
  s.refresh(now + 34 * kS);
  CHECK_FALSE(s.load().healthy);
  s.refresh(now + 35 * kS);
  CHECK(s.load().healthy);
  CHECK(s.ejections() == 3);
}

TEST_CASE("upstream server: successes reset the run of failures", "[upstream_server]") {
  UpstreamServer s(server_cfg(20), upstream_cfg());
  for (int i = 0; i < 5; ++i) {
    CHECK_FALSE(s.on_failure(kS));
    s.on_success(kS, 1000, 1);
  }
  CHECK(s.health() == ServerHealth::Healthy);
}

TEST_CASE("upstream server: slow start ramps limit and weight from a tenth", "[upstream_server]") {
  UpstreamServer s(server_cfg(20, 10), upstream_cfg());
  CHECK(s.limit() == 20);  // a server present from the start is not ramped
  s.set_check_result(false, 0);
  CHECK(s.health() == ServerHealth::CheckFailed);
  CHECK_FALSE(s.load().healthy);
  const uint64_t back = 50 * kS;
  s.set_check_result(true, back);
  CHECK(s.load().healthy);
  CHECK(s.limit() == 2);  // a tenth of 20
  CHECK(s.load().weight == 1);
  CHECK(s.refresh(back + 5 * kS));  // half way: 0.1 + 0.9 / 2 = 55 %
  CHECK(s.limit() == 11);
  CHECK(s.load().weight == 5);
  CHECK_FALSE(s.refresh(back + 10 * kS));  // done: nothing changes with time any more
  CHECK(s.limit() == 20);
  CHECK(s.load().weight == 10);
}

TEST_CASE("upstream server: a reload keeps state and takes the new cap", "[upstream_server]") {
  UpstreamServer s(server_cfg(20), upstream_cfg());
  s.take_slot();
  s.take_slot();
  s.on_overload(kS, 1000, 2);  // lowered to what it holds
  CHECK(s.limit() == 2);
  auto up = upstream_cfg();
  s.configure(server_cfg(30), up);
  CHECK(s.in_flight() == 2);
  CHECK(s.limit() == 2);  // still lowered: the app said so
  s.give_slot();
  s.give_slot();
  s.on_success(kS, 1000, 2);
  s.on_success(kS, 1000, 2);
  CHECK(s.limit() == 3);  // climbing back, one step per limit's worth of successes
}

}  // namespace
}  // namespace sluice::proxy
