// io_threads: 2 in the real binary: two event loops, each with its own
// socket on every listener's address, sharing the upstream pools. The
// kernel spreads connections over both loops; the shield (the cap, the
// queue) holds for the app across them; the admin endpoint adds up both
// loops' counters; reload and SIGTERM reach both.
#include <csignal>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/http_client.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string two_loops(const std::string& listeners, const std::string& upstream) {
  return "io_threads: 2\n"
         "listeners:\n" +
         listeners +
         "routes:\n"
         "  - { name: all, upstream: app }\n"
         "upstreams:\n"
         "  app:\n"
         "    servers:\n"
         "      - { address: \"127.0.0.1:" +
         upstream +
         "\n"
         "    queue: { max_length: 1000, timeout: 10s }\n"
         "admin: { listen: \"127.0.0.1:0\" }\n"
         "logging: { level: info, access_log: { path: \"off\" } }\n";
}

const std::string kWeb = "  - { name: web, listen: \"127.0.0.1:0\" }\n";

double metric(uint16_t admin, const std::string& series) {
  return metric_sample(get(admin, "/metrics").body, series);
}

// The `n`th reload, applied (not refused).
bool reload(Sluice& s, int n) {
  return s.reload(n) && count_of(s.process().output(), "is in effect") == static_cast<size_t>(n);
}

}  // namespace

TEST_CASE("io_threads: connections spread over both loops and the counters add up",
          "[io_threads]") {
  Backend backend;
  Sluice s(two_loops(kWeb, std::to_string(backend.port()) + "\", max_concurrent: 0 }"));
  uint16_t admin = admin_port(s);
  // 80 connections, one request each: the kernel hashes each to one of the
  // two sockets, so both loops get some (all on one: odds of 2^-79).
  std::atomic<int> ok{0};
  run_parallel(16, [&](int) {
    for (int k = 0; k < 5; ++k) {
      if (get(s.port(), "/").status == 200) ++ok;
    }
  });
  CHECK(ok.load() == 80);
  const std::string m = get(admin, "/metrics").body;
  CHECK(metric_sample(m, "sluice_requests_total{route=\"all\",class=\"2xx\"}") == 80);
  CHECK(metric_sample(m, "sluice_connections_accepted_total") == 80);
  const double loop0 = metric_sample(m, "sluice_loop_connections_accepted_total{loop=\"0\"}");
  const double loop1 = metric_sample(m, "sluice_loop_connections_accepted_total{loop=\"1\"}");
  CHECK(loop0 > 0);
  CHECK(loop1 > 0);
  CHECK(loop0 + loop1 == 80);
  CHECK(metric_sample(m, "sluice_upstream_in_flight{upstream=\"app\",server=\"127.0.0.1:" +
                             std::to_string(backend.port()) + "\"}") == 0);
  const std::string status = get(admin, "/status").body;
  CHECK(status.find("\"requests\":80") != std::string::npos);
}

TEST_CASE("io_threads: the app never sees more than its cap, whichever loop a request came through",
          "[io_threads]") {
  // As the shield test "10 x T clients", through two loops: one shared
  // count per server, one shared queue.
  LegacyBackend app({"--threads", "4", "--queue", "8", "--service-ms", "40"});
  Sluice s(two_loops(kWeb, std::to_string(app.port()) + "\", max_concurrent: 4 }"));
  uint16_t admin = admin_port(s);
  std::mutex mu;
  std::vector<HttpResponse> all;
  run_parallel(40, [&](int) {
    for (int k = 0; k < 3; ++k) {
      HttpResponse r = get(s.port(), "/work");
      std::lock_guard lock(mu);
      all.push_back(std::move(r));
    }
  });
  int ok = 0;
  for (const auto& r : all) {
    if (r.status == 200) {
      ++ok;
      continue;
    }
    INFO("status " << r.status << " body " << r.body);
    CHECK(r.status == 503);
    CHECK(r.header("Retry-After").has_value());
  }
  REQUIRE(app.wait_idle());
  LegacyBackendStats st = app.stats();
  CHECK(st.rejected == 0);  // the app's own 503: never
  CHECK(st.peak_busy <= 4);
  CHECK(st.served == ok);
  CHECK(ok >= 60);
  // Both loops took connections, and queued requests waited on both.
  const std::string m = get(admin, "/metrics").body;
  CHECK(metric_sample(m, "sluice_loop_connections_accepted_total{loop=\"0\"}") > 0);
  CHECK(metric_sample(m, "sluice_loop_connections_accepted_total{loop=\"1\"}") > 0);
  CHECK(metric_sample(m, "sluice_upstream_queue_wait_seconds_count{upstream=\"app\"}") > 0);
  CHECK(metric_sample(m, "sluice_upstream_queue_depth{upstream=\"app\"}") == 0);
}

TEST_CASE("io_threads: a reload and SIGTERM reach both loops", "[io_threads]") {
  Backend backend;
  const std::string up = std::to_string(backend.port()) + "\", max_concurrent: 0 }";
  Sluice s(two_loops(kWeb, up));
  uint16_t admin = admin_port(s);
  REQUIRE(get(s.port(), "/").status == 200);

  // A second listener: both loops bind a socket on it.
  s.rewrite_config(two_loops(kWeb + "  - { name: more, listen: \"127.0.0.1:0\" }\n", up));
  REQUIRE(reload(s, 1));
  std::string line;
  REQUIRE(s.process().wait_for_line("listener more listening on 127.0.0.1:[0-9]+", 5s, &line));
  const uint16_t more = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  const double before0 = metric(admin, "sluice_loop_connections_accepted_total{loop=\"0\"}");
  const double before1 = metric(admin, "sluice_loop_connections_accepted_total{loop=\"1\"}");
  std::atomic<int> ok{0};
  run_parallel(8, [&](int) {
    for (int k = 0; k < 5; ++k) {
      if (get(more, "/").status == 200) ++ok;
    }
  });
  CHECK(ok.load() == 40);
  CHECK(metric(admin, "sluice_loop_connections_accepted_total{loop=\"0\"}") > before0);
  CHECK(metric(admin, "sluice_loop_connections_accepted_total{loop=\"1\"}") > before1);

  // Both loops keep idle connections to the server; a reload replaces it.
  // The dropped server is freed only once both loops have let go of it
  // (ASan would see a loop touching it after).
  Backend other;
  const std::string listeners = kWeb + "  - { name: more, listen: \"127.0.0.1:0\" }\n";
  s.rewrite_config(two_loops(listeners, std::to_string(other.port()) + "\", max_concurrent: 0 }"));
  REQUIRE(reload(s, 2));
  ok = 0;
  run_parallel(8, [&](int) {
    for (int k = 0; k < 5; ++k) {
      if (get(more, "/").status == 200) ++ok;
    }
  });
  // The first loop applies a reload before the others, but the pools are
  // shared: from then on every request goes to the new server.
  CHECK(ok.load() == 40);
  CHECK(other.stats().requests == 40);
  // And back: the first backend is a new server again.
  s.rewrite_config(two_loops(listeners, up));
  REQUIRE(reload(s, 3));
  REQUIRE(get(more, "/").status == 200);

  // SIGTERM: a slow request in flight finishes, then sluice exits 0. (No
  // Catch2 macro on the client thread: Catch2 is not thread-safe.)
  std::atomic<int> slow_status{0};
  std::thread slow([&] { slow_status = get(more, "/sleep?ms=600").status; });
  auto deadline = Clock::now() + 3s;
  while (backend.stats().active < 1 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  REQUIRE(backend.stats().active == 1);
  s.process().signal(SIGTERM);
  auto status = s.process().wait_exit(10s);
  slow.join();
  CHECK(slow_status.load() == 200);
  INFO(s.process().output());
  CHECK(status == 0);
}
