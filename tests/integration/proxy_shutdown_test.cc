// Graceful shutdown: SIGTERM lets requests in flight finish, closes idle
// connections and exits 0.
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("SIGTERM: a slow request in flight completes and sluice exits 0", "[shutdown]") {
  ProxyFixture f(simple_config());

  // An idle keep-alive connection, and a slow request on another one.
  UniqueFd idle = connect_or_fail(f.port());
  REQUIRE(send_all(idle.get(), build_request("GET", "/")));
  REQUIRE(read_response(idle.get(), 5s).status == 200);

  UniqueFd busy = connect_or_fail(f.port());
  REQUIRE(send_all(busy.get(), build_request("GET", "/sleep?ms=800")));
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active < 1 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  REQUIRE(f.backend().stats().active == 1);

  f.sluice().process().signal(SIGTERM);

  // The idle connection is closed without waiting for the slow one.
  auto t0 = Clock::now();
  CHECK(wait_peer_closed(idle.get(), 2s));
  CHECK(Clock::now() - t0 < 1500ms);

  HttpResponse r = read_response(busy.get(), 5s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slept\n");
  CHECK(r.complete);
  CHECK((r.peer_closed || wait_peer_closed(busy.get(), 2s)));

  auto status = f.sluice().process().wait_exit(5s);
  INFO(f.sluice().process().output());
  CHECK(status == 0);
}

TEST_CASE("SIGTERM under load: every request in flight and queued is answered", "[shutdown]") {
  // A cap of 2 and 6 slow requests: 2 at the app, 4 waiting in sluice's queue.
  ProxyFixture f(
      "listeners:\n"
      "  - { name: web, listen: \"127.0.0.1:0\" }\n"
      "routes:\n"
      "  - { name: all, upstream: app }\n"
      "upstreams:\n"
      "  app:\n"
      "    servers: [ { address: \"127.0.0.1:{B0}\", max_concurrent: 2 } ]\n"
      "    queue: { max_length: 100, timeout: 10s }\n"
      "logging: { level: info, access_log: { path: \"off\" } }\n");
  std::vector<UniqueFd> conns;
  for (int i = 0; i < 6; ++i) {
    conns.push_back(connect_or_fail(f.port()));
    REQUIRE(send_all(conns.back().get(), build_request("GET", "/sleep?ms=300")));
  }
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active < 2 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  REQUIRE(f.backend().stats().active == 2);

  f.sluice().process().signal(SIGTERM);
  for (auto& c : conns) {
    HttpResponse r = read_response(c.get(), 5s);
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.complete);
  }
  CHECK(f.backend().stats().max_active <= 2);
  auto status = f.sluice().process().wait_exit(5s);
  INFO(f.sluice().process().output());
  CHECK(status == 0);
}

TEST_CASE("SIGTERM: drain_timeout bounds the wait for a request that takes too long",
          "[shutdown]") {
  ProxyFixture f("drain_timeout: 400ms\n" + simple_config());
  UniqueFd busy = connect_or_fail(f.port());
  REQUIRE(send_all(busy.get(), build_request("GET", "/sleep?ms=5000")));
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active < 1 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  REQUIRE(f.backend().stats().active == 1);

  auto t0 = Clock::now();
  f.sluice().process().signal(SIGTERM);
  auto status = f.sluice().process().wait_exit(5s);
  auto took = Clock::now() - t0;
  INFO(f.sluice().process().output());
  CHECK(status == 0);
  CHECK(took >= 350ms);
  CHECK(took < 2s);
  // The cut-off request was not answered as if complete.
  HttpResponse r = read_response(busy.get(), 2s);
  CHECK_FALSE(r.complete);
}

// Health checks and a slow start ramp run on timers of the upstream's own;
// they must not keep sluice alive once every connection has gone (they did:
// it logged "stopped" and ran on until systemd killed it).
TEST_CASE("SIGTERM: sluice exits at once with health checks and a slow start running",
          "[shutdown]") {
  const int loops = GENERATE(1, 2);
  INFO("io_threads: " << loops);
  ProxyFixture f("io_threads: " + std::to_string(loops) + "\n" +
                 simple_config("", "    health_check: { path: /, interval: 2s }\n"
                                   "    slow_start: 30s\n"));
  REQUIRE(get(f.port(), "/").status == 200);
  // A reload that adds a server starts its slow start (30 s of ramp).
  Backend second;
  f.sluice().rewrite_config(
      "io_threads: " + std::to_string(loops) + "\n" +
      fill(simple_config("", "    health_check: { path: /, interval: 2s }\n"
                             "    slow_start: 30s\n",
                         {"{B0}", std::to_string(second.port())}),
           {{"B0", std::to_string(f.backend().port())}}));
  f.sluice().process().signal(SIGHUP);
  REQUIRE(f.sluice().process().wait_for_line("reload: .* is in effect", 5s));
  REQUIRE(get(f.port(), "/").status == 200);

  auto t0 = Clock::now();
  f.sluice().process().signal(SIGTERM);
  auto status = f.sluice().process().wait_exit(5s);
  INFO(f.sluice().process().output());
  CHECK(status == 0);
  CHECK(Clock::now() - t0 < 2s);
}
