// The admin listener of the real binary: Prometheus metrics and JSON status
// that follow what the proxy actually did.
#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/http_client.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

const char* kAdminConfig =
    "listeners:\n"
    "  - { name: web, listen: \"127.0.0.1:0\" }\n"
    "routes:\n"
    "  - { name: app, upstream: app }\n"
    "upstreams:\n"
    "  app:\n"
    "    servers: [ { address: \"127.0.0.1:{B0}\", max_concurrent: 1 } ]\n"
    "    queue: { max_length: 0 }\n"
    "admin: { listen: \"127.0.0.1:0\" }\n"
    "logging: { level: info, access_log: { path: \"off\" } }\n";

TEST_CASE("admin: /metrics counts requests, sheds and in-flight per server", "[admin]") {
  ProxyFixture f(kAdminConfig);
  uint16_t admin = admin_port(f.sluice());
  for (int i = 0; i < 3; ++i) REQUIRE(get(f.port(), "/").status == 200);

  // One slow request holds the only slot; with no queue the next is shed.
  HttpResponse slow;
  std::thread t([&] { slow = get(f.port(), "/sleep?ms=600"); });
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (f.backend().stats().active < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  auto shed = get(f.port(), "/");
  CHECK(shed.status == 503);
  CHECK(shed.header("Retry-After").has_value());

  std::string m = get(admin, "/metrics").body;
  INFO(m);
  const std::string server = "server=\"127.0.0.1:" + std::to_string(f.backend().port()) + "\"";
  CHECK(metric_sample(m, "sluice_upstream_in_flight{upstream=\"app\"," + server + "}") == 1);
  CHECK(metric_sample(m, "sluice_upstream_limit{upstream=\"app\"," + server + "}") == 1);
  t.join();
  REQUIRE(slow.status == 200);

  m = get(admin, "/metrics").body;
  CHECK(metric_sample(m, "sluice_requests_total{route=\"app\",class=\"2xx\"}") == 4);
  CHECK(metric_sample(m, "sluice_requests_total{route=\"app\",class=\"5xx\"}") == 1);
  CHECK(metric_sample(m, "sluice_upstream_shed_total{upstream=\"app\",reason=\"queue_full\"}") == 1);
  CHECK(metric_sample(m, "sluice_upstream_in_flight{upstream=\"app\"," + server + "}") == 0);
  CHECK(metric_sample(m, "sluice_request_duration_seconds_count{route=\"app\"}") == 5);
  CHECK(metric_sample(m, "sluice_request_duration_seconds_bucket{route=\"app\",le=\"+Inf\"}") == 5);
  CHECK(metric_sample(m, "sluice_response_body_bytes_total") >= 300);
  CHECK(m.find("# TYPE sluice_request_duration_seconds histogram") != std::string::npos);
}

TEST_CASE("admin: /status is JSON with listeners and servers", "[admin]") {
  ProxyFixture f(kAdminConfig);
  uint16_t admin = admin_port(f.sluice());
  auto r = get(admin, "/status");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "application/json");
  INFO(r.body);
  CHECK(r.body.find("\"listeners\":[{\"name\":\"web\",\"address\":\"127.0.0.1:" +
                    std::to_string(f.port()) + "\"") != std::string::npos);
  CHECK(r.body.find("\"address\":\"127.0.0.1:" + std::to_string(f.backend().port()) +
                    "\",\"in_flight\":0,\"limit\":1,\"limit_configured\":1,\"limit_learned\":0,\"healthy\":true,\"health\":\"healthy\"") != std::string::npos);
}

TEST_CASE("admin: unknown paths get 404, other methods 405", "[admin]") {
  ProxyFixture f(kAdminConfig);
  uint16_t admin = admin_port(f.sluice());
  CHECK(get(admin, "/nope").status == 404);
  CHECK(request(admin, "POST", "/metrics", {}, "x").status == 405);
}

}  // namespace
