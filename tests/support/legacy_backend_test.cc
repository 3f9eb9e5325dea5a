// sluice-legacy-backend through real sockets: each TEST_CASE starts its own
// process on an ephemeral port and checks that it behaves like a
// thread-per-request app (fixed threads, bounded queue, its own 503,
// threads held by slow clients).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/hash.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct RunningLegacy {
  Process proc;
  uint16_t port = 0;

  explicit RunningLegacy(std::vector<std::string> args)
      : proc([&] {
          std::vector<std::string> argv = {SLUICE_LEGACY_BACKEND_BINARY, "--listen",
                                           "127.0.0.1:0"};
          argv.insert(argv.end(), args.begin(), args.end());
          return argv;
        }()) {
    std::string line;
    INFO(proc.output());
    REQUIRE(proc.wait_for_line(R"(^listening on 127\.0\.0\.1:\d+$)", 10s, &line));
    port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  }

  int64_t stat(const std::string& name) {
    HttpResponse r = get(port, "/stats");
    REQUIRE(r.status == 200);
    std::smatch m;
    REQUIRE(std::regex_search(r.body, m, std::regex("\"" + name + "\":(-?\\d+)")));
    return std::stoll(m[1]);
  }

  // A worker updates its counters just after its last write, so a client
  // holding its response may ask a moment too early: wait up to 2 s.
  bool stat_becomes(const std::string& name, int64_t value) {
    auto deadline = Clock::now() + 2s;
    while (stat(name) != value && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return stat(name) == value;
  }
};

std::vector<HttpResponse> parallel_gets(uint16_t port, int n, const std::string& target) {
  std::vector<HttpResponse> out(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { out[static_cast<size_t>(i)] = get(port, target); });
  }
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace

TEST_CASE("legacy backend: 4 threads serve 12 concurrent clients 4 at a time, the rest queue",
          "[legacy]") {
  RunningLegacy app({"--threads", "4", "--queue", "16", "--service-ms", "300"});
  auto t0 = Clock::now();
  auto responses = parallel_gets(app.port, 12, "/");
  auto took = Clock::now() - t0;
  for (const auto& r : responses) {
    CHECK(r.status == 200);
    CHECK(r.body == "legacy ok\n");
  }
  // Three waves of four: the threads, not the clients, set the pace.
  CHECK(took >= 850ms);
  CHECK(app.stat_becomes("served", 12));
  CHECK(app.stat("rejected") == 0);
  CHECK(app.stat("peak_busy") == 4);
  // All twelve arrived within the first 300 ms: eight waited at once.
  CHECK(app.stat("peak_queue") >= 8);
  CHECK(app.stat_becomes("busy", 0));
  CHECK(app.stat("queued") == 0);

  // Reset restarts the counters and the peaks from the present (idle).
  REQUIRE(get(app.port, "/stats/reset").status == 200);
  CHECK(app.stat("served") == 0);
  CHECK(app.stat("peak_busy") == 0);
  CHECK(app.stat("peak_queue") == 0);
  REQUIRE(get(app.port, "/?ms=0").status == 200);
  CHECK(app.stat_becomes("served", 1));
  CHECK(app.stat("peak_busy") == 1);
  CHECK(app.stat("peak_queue") == 1);  // every request passes through the queue
}

TEST_CASE("legacy backend: a full queue gets the app's own 503", "[legacy]") {
  RunningLegacy app({"--threads", "1", "--queue", "1", "--service-ms", "600"});
  // One request on the thread, one in the queue, each confirmed before the
  // next is sent: a worker slow to wake must not decide the outcome.
  HttpResponse first, second;
  std::thread t1([&] { first = get(app.port, "/"); });
  REQUIRE(app.stat_becomes("busy", 1));
  std::thread t2([&] { second = get(app.port, "/"); });
  REQUIRE(app.stat_becomes("queued", 1));

  for (int i = 0; i < 2; ++i) {
    auto t0 = Clock::now();
    HttpResponse r = get(app.port, "/");
    CHECK(Clock::now() - t0 < 300ms);  // refused at once, not after a wait
    CHECK(r.status == 503);
    CHECK(r.body.find("app overloaded") != std::string::npos);
    CHECK(r.header("connection") == "close");
  }
  t1.join();
  t2.join();
  CHECK(first.status == 200);
  CHECK(second.status == 200);
  CHECK(app.stat_becomes("served", 2));
  CHECK(app.stat("rejected") == 2);
  CHECK(app.stat("peak_busy") == 1);
  CHECK(app.stat("peak_queue") == 1);
}

TEST_CASE("legacy backend: a slow uploader holds a thread while it uploads", "[legacy]") {
  RunningLegacy app({"--threads", "1", "--queue", "4", "--service-ms", "0"});
  UniqueFd slow = connect_tcp("127.0.0.1", app.port);
  REQUIRE(slow.valid());
  REQUIRE(send_all(slow.get(), "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"));
  auto t0 = Clock::now();
  // A fast request behind it, started once the upload holds the thread.
  HttpResponse fast;
  Clock::time_point fast_done;
  std::thread other([&] {
    std::this_thread::sleep_for(250ms);
    fast = get(app.port, "/");
    fast_done = Clock::now();
  });
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(100ms);
    if (i == 4) {
      // Half-way: the one thread is reading our body, the fast one waits.
      CHECK(app.stat("busy") == 1);
      CHECK(app.stat("queued") == 1);
    }
    REQUIRE(send_all(slow.get(), "x"));
  }
  HttpResponse up = read_response(slow.get(), 5s);
  other.join();
  CHECK(up.status == 200);
  CHECK(up.body == "10\n");
  CHECK(fast.status == 200);
  // The fast request could only start once the last byte arrived (~1 s).
  CHECK(fast_done - t0 >= 900ms);
  CHECK(app.stat_becomes("busy", 0));
  CHECK(app.stat("peak_busy") == 1);
  CHECK(app.stat_becomes("served", 2));
}

TEST_CASE("legacy backend: a slow downloader holds a thread until the kernel takes the last byte",
          "[legacy]") {
  RunningLegacy app({"--threads", "2", "--queue", "4", "--service-ms", "0"});
  constexpr size_t kBody = 16u << 20;  // far more than both socket buffers hold
  // A small receive buffer set before connecting, so the window stays small.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  UniqueFd reader(fd);
  int rcvbuf = 16 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(app.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(send_all(fd, build_request("GET", "/bytes?n=" + std::to_string(kBody))));

  std::this_thread::sleep_for(300ms);
  CHECK(app.stat("busy") == 1);  // blocked in write, not serving anyone else
  CHECK(app.stat("served") == 0);

  HttpResponse r = read_response(fd, 20s);
  REQUIRE(r.status == 200);
  CHECK(r.complete);
  CHECK(r.body.size() == kBody);
  CHECK(body_hash(r.body) == body_hash(pattern_body(kBody)));
  CHECK(app.stat_becomes("busy", 0));
  CHECK(app.stat_becomes("served", 1));
}

TEST_CASE("legacy backend: keep-alive, pipelining, /health switches, HEAD, bad input", "[legacy]") {
  RunningLegacy app({"--threads", "2", "--queue", "4", "--service-ms", "10"});

  UniqueFd fd = connect_tcp("127.0.0.1", app.port);
  REQUIRE(fd.valid());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=100")));
    HttpResponse r = read_response(fd.get(), 5s);
    REQUIRE(r.status == 200);
    CHECK(r.body == pattern_body(100));
    CHECK(r.keep_alive);
  }
  // Two pipelined app requests, then a /stats behind them on the same
  // connection: answered in order.
  REQUIRE(send_all(fd.get(), build_request("POST", "/upload", {}, "hello") +
                                 build_request("GET", "/bytes?n=7") +
                                 build_request("GET", "/stats")));
  CHECK(read_response(fd.get(), 5s).body == "5\n");
  CHECK(read_response(fd.get(), 5s).body == pattern_body(7));
  HttpResponse stats = read_response(fd.get(), 5s);
  CHECK(stats.body.find("\"served\":5") != std::string::npos);

  // A chunked upload.
  REQUIRE(send_all(fd.get(), build_request("POST", "/upload", {{"Transfer-Encoding", "chunked"}},
                                           "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")));
  CHECK(read_response(fd.get(), 5s).body == "7\n");

  CHECK(get(app.port, "/health").status == 200);
  CHECK(get(app.port, "/health/down").status == 200);
  HttpResponse down = get(app.port, "/health");
  CHECK(down.status == 503);
  CHECK(down.body == "down\n");
  CHECK(get(app.port, "/health/up").status == 200);
  CHECK(get(app.port, "/health").status == 200);
  // Health and stats requests are not app requests.
  CHECK(app.stat_becomes("served", 6));

  HttpResponse head = request(app.port, "HEAD", "/bytes?n=1000", {}, {}, 5s);
  CHECK(head.status == 200);
  CHECK(head.header("content-length") == "1000");

  auto bad = request(app.port, "GET", "/ bad target", {}, {}, 5s);
  CHECK(bad.status == 400);
}

TEST_CASE("legacy backend: SIGTERM exits 0 even with a thread stuck on a slow client",
          "[legacy]") {
  RunningLegacy app({"--threads", "1", "--queue", "1", "--service-ms", "0"});
  UniqueFd stuck = connect_tcp("127.0.0.1", app.port);
  REQUIRE(send_all(stuck.get(), "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab"));
  UniqueFd idle = connect_tcp("127.0.0.1", app.port);  // watched by the poller
  std::this_thread::sleep_for(200ms);
  CHECK(app.stat("busy") == 1);
  app.proc.signal(SIGTERM);
  CHECK(app.proc.wait_exit(5s) == 0);
}
