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
