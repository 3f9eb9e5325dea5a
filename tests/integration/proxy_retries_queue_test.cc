// Retries on connect failure and early close, per-server concurrency caps
// and the upstream queue.
#include <algorithm>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

int count(const std::vector<int>& v, int x) { return static_cast<int>(std::count(v.begin(), v.end(), x)); }

}  // namespace

TEST_CASE("retries: a refused connection is retried on the next server", "[retries_queue]") {
  ProxyFixture f(simple_config("", "    retries: { attempts: 1 }\n", {"{CLOSED}", "{B0}"}));
  f.backend().reset_stats();
  // Round robin sends about half of the first tries to the closed port.
  for (int i = 0; i < 6; ++i) {
    HttpResponse r = get(f.port(), "/");
    INFO(i << ": " << r.error);
    CHECK(r.status == 200);
    CHECK(r.body.size() == 100);
  }
  CHECK(f.backend().stats().requests == 6);
}

TEST_CASE("retries: with attempts 0 a refused connection is 502", "[retries_queue]") {
  SECTION("single closed server") {
    ProxyFixture f(simple_config("", "    retries: { attempts: 0 }\n", {"{CLOSED}"}),
                   Setup{.backends = 0, .backend_args = {}});
    CHECK(get(f.port(), "/").status == 502);
  }
  SECTION("a closed and an open server: no second try") {
    ProxyFixture f(simple_config("", "    retries: { attempts: 0 }\n", {"{CLOSED}", "{B0}"}));
    f.backend().reset_stats();
    std::vector<int> status;
    for (int i = 0; i < 6; ++i) status.push_back(get(f.port(), "/").status);
    INFO("200s: " << count(status, 200) << ", 502s: " << count(status, 502));
    CHECK(count(status, 502) >= 1);
    CHECK(count(status, 200) + count(status, 502) == 6);
    CHECK(f.backend().stats().requests == count(status, 200));
  }
}

TEST_CASE("retries: an upstream closing before any response byte", "[retries_queue]") {
  // Reads each request, then closes without a byte of response.
  ScriptedUpstream closer([](ScriptedUpstream& self, int fd) { self.read_request(fd, 5s); });
  ProxyFixture f(simple_config("", "    retries: { attempts: 1 }\n    balance: round_robin\n",
                               {"{S0}", "{B0}"}),
                 Setup{}, {closer.port()});
  f.backend().reset_stats();

  SECTION("an idempotent GET is retried on the other server") {
    std::vector<int> status;
    for (int i = 0; i < 2; ++i) status.push_back(get(f.port(), "/").status);
    CHECK(status == std::vector<int>{200, 200});
    CHECK(closer.heads().size() == 1);  // round robin: one first try there
    CHECK(f.backend().stats().requests == 2);
  }
  SECTION("a POST with a body is not retried") {
    std::vector<int> status;
    for (int i = 0; i < 2; ++i) {
      status.push_back(request(f.port(), "POST", "/echo", {}, "payload").status);
    }
    INFO("statuses " << status[0] << ", " << status[1]);
    CHECK(count(status, 200) == 1);
    CHECK(count(status, 502) == 1);
    CHECK(closer.heads().size() == 1);
    CHECK(f.backend().stats().requests == 1);
  }
}

TEST_CASE("max_concurrent caps what a server sees at once", "[retries_queue]") {
  ProxyFixture f(R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: all
    upstream: app
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{B0}", max_concurrent: 2 }
    queue: { max_length: 100, timeout: 10s }
logging: { level: info, access_log: { path: "off" } }
)");
  f.backend().reset_stats();
  std::vector<int> status(8, 0);
  auto t0 = Clock::now();
  run_parallel(8, [&](int i) {
    status[static_cast<size_t>(i)] = request(f.port(), "GET", "/sleep?ms=300", {}, {}, 15s).status;
  });
  auto took = Clock::now() - t0;
  CHECK(count(status, 200) == 8);
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 8);
  CHECK(s.max_active <= 2);
  CHECK(s.max_active >= 1);
  CHECK(took >= 1100ms);  // four rounds of two
}

TEST_CASE("a full queue answers 503 with Retry-After", "[retries_queue]") {
  ProxyFixture f(R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: all
    upstream: app
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{B0}", max_concurrent: 1 }
    queue: { max_length: 1, timeout: 10s }
logging: { level: info, access_log: { path: "off" } }
)");
  std::vector<HttpResponse> rs(4);
  run_parallel(4, [&](int i) {
    rs[static_cast<size_t>(i)] = request(f.port(), "GET", "/sleep?ms=600", {}, {}, 10s);
  });
  std::vector<int> status;
  for (const auto& r : rs) status.push_back(r.status);
  INFO("200s: " << count(status, 200) << ", 503s: " << count(status, 503));
  CHECK(count(status, 200) == 2);  // one in flight, one waiting
  CHECK(count(status, 503) == 2);
  for (const auto& r : rs) {
    if (r.status != 503) continue;
    CHECK(r.header("Retry-After").has_value());
  }
  CHECK(f.backend().stats().max_active == 1);
}

TEST_CASE("a request waiting longer than queue.timeout gets 503", "[retries_queue]") {
  ProxyFixture f(R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: all
    upstream: app
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{B0}", max_concurrent: 1 }
    queue: { max_length: 10, timeout: 300ms }
logging: { level: info, access_log: { path: "off" } }
)");
  HttpResponse slow;
  std::thread t([&] { slow = request(f.port(), "GET", "/sleep?ms=1500", {}, {}, 10s); });
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active < 1 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  auto t0 = Clock::now();
  HttpResponse queued = get(f.port(), "/");
  auto took = Clock::now() - t0;
  t.join();
  CHECK(slow.status == 200);
  CHECK(queued.status == 503);
  CHECK(queued.header("Retry-After").has_value());
  CHECK(took >= 250ms);
  CHECK(took < 1200ms);
}
