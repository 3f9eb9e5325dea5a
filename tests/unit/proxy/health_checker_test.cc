// HealthChecker against real loopback servers: each ProbeServer is a
// listening socket on 127.0.0.1 served by its own thread, answering the way
// the test tells it to (200, 500, hang, garbage...). Intervals are 50 ms so
// a whole run of probes takes a fraction of a second.
#include "proxy/health_checker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/units.h"
#include "tests/unit/loop_fixture.h"

namespace sluice::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How a ProbeServer answers, one letter per request; the last letter
// repeats. A script makes runs of successes and failures exact, with no
// race between the test thread and a probe in flight.
//   O 200 with a small body      R 302            E 500
//   H reads the request, never answers, keeps the socket open
//   G a line that is not HTTP    I 100 Continue, then 204
//   S "HTTP/1.1 200 " and then 64 KiB without a line end
//   B 200 announcing 1 GiB, sent until the peer goes away

std::string bind_loopback(int fd, uint16_t* port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "bind failed";
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return {};
}

class ProbeServer {
 public:
  explicit ProbeServer(std::string script) : script_(std::move(script)) {
    REQUIRE(!script_.empty());
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(bind_loopback(fd_, &port_).empty());
    REQUIRE(::listen(fd_, 16) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~ProbeServer() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(fd_);
  }
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  uint16_t port() const { return port_; }
  // Requests read so far (counted before the answer is sent).
  int requests() const { return requests_.load(); }
  std::string first_head() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_head_;
  }
  // 'B': body bytes the kernel took before the peer went away.
  uint64_t body_sent() const { return body_sent_.load(); }
  bool body_done() const { return body_done_.load(); }
  Clock::time_point first_arrival() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_arrival_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string head = read_head(c);
      if (head.empty()) {
        ::close(c);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (requests_ == 0) {
          first_head_ = head;
          first_arrival_ = Clock::now();
        }
      }
      int i = requests_++;
      if (answer(c, script_[std::min<size_t>(static_cast<size_t>(i), script_.size() - 1)])) {
        held_.push_back(c);
      } else {
        ::close(c);
      }
    }
  }

  std::string read_head(int c) {
    std::string head;
    auto deadline = Clock::now() + 2s;
    while (head.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline && !stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buf[1024];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return {};
      head.append(buf, static_cast<size_t>(n));
    }
    return head.find("\r\n\r\n") == std::string::npos ? std::string() : head;
  }

  static void send_str(int c, const std::string& s) {
    ::send(c, s.data(), s.size(), MSG_NOSIGNAL);
  }

  // True: keep the socket open (Hang).
  bool answer(int c, char what) {
    switch (what) {
      case 'O':
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        return false;
      case 'R':
        send_str(c, "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
        return false;
      case 'E':
        send_str(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom");
        return false;
      case 'H': return true;
      case 'G': send_str(c, "SSH-2.0-OpenSSH_9.2\r\n"); return false;
      case 'S':
        send_str(c, "HTTP/1.1 200 " + std::string(64 * 1024, 'x'));
        return false;
      case 'B': {
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
        std::string chunk(64 * 1024, 'b');
        // Until the checker hangs up (EPIPE/ECONNRESET) or 1 GiB is sent.
        for (int i = 0; i < 16384 && !stop_; ++i) {
          ssize_t n = ::send(c, chunk.data(), chunk.size(), MSG_NOSIGNAL);
          if (n < 0) break;
          body_sent_ += static_cast<uint64_t>(n);
        }
        body_done_ = true;
        return false;
      }
      case 'I':
        send_str(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        return false;
      default: return false;  // an unknown letter: close without answering
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  const std::string script_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<uint64_t> body_sent_{0};
  std::atomic<bool> body_done_{false};
  std::vector<int> held_;  // server thread only until join
  std::mutex mu_;
  std::string first_head_;
  Clock::time_point first_arrival_{};
  std::thread thread_;
};

// A port on 127.0.0.1 with nothing listening: bound, then closed.
uint16_t refused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  uint16_t port = 0;
  REQUIRE(bind_loopback(fd, &port).empty());
  ::close(fd);
  return port;
}

config::Server server_at(uint16_t port) {
  config::Server s;
  s.address = config::parse_address("127.0.0.1:" + std::to_string(port)).value();
  return s;
}

config::HealthCheck fast_checks(uint32_t healthy_after = 2, uint32_t unhealthy_after = 3) {
  config::HealthCheck c;
  c.interval = 50ms;
  // Generous: on a loaded machine a probe server thread may take a while
  // to answer, and these tests count answers, not timeouts.
  c.timeout = 1s;
  c.healthy_after = healthy_after;
  c.unhealthy_after = unhealthy_after;
  return c;
}

struct Event {
  size_t server;
  bool healthy;
  std::string reason;
  uint64_t probes;  // checker's count for that server at the time
};

struct Recorder final : HealthListener {
  HealthChecker* checker = nullptr;
  std::vector<Event> events;
  bool stop_on_event = false;
  void on_health_change(size_t server, bool healthy, const char* reason) override {
    events.push_back({server, healthy, reason, checker->probes(server)});
    if (stop_on_event) {
      checker->stop();
      checker = nullptr;
    }
  }
};

using Fixture = test::LoopFixture;

TEST_CASE_METHOD(Fixture, "health: a server answering 200 stays healthy", "[health]") {
  ProbeServer srv("O");
  Recorder rec;
  auto* hc = HealthChecker::start(loop(), fast_checks(), {server_at(srv.port())}, &rec);
  rec.checker = hc;
  REQUIRE(hc->healthy(0));
  REQUIRE(run_until([&] { return hc->probes(0) >= 5; }, 5s));
  CHECK(hc->healthy(0));
  CHECK(rec.events.empty());
  CHECK(hc->last_failure(0).empty());
  CHECK(srv.requests() >= 5);

  // The probe request is exactly what the docs promise.
  std::string head = srv.first_head();
  std::string host = "127.0.0.1:" + std::to_string(srv.port());
  CHECK(head == "GET /health HTTP/1.1\r\nHost: " + host +
                    "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n");
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: 500 takes a server out after exactly unhealthy_after probes",
                 "[health]") {
  ProbeServer srv("E");
  Recorder rec;
  auto* hc = HealthChecker::start(loop(), fast_checks(2, 3), {server_at(srv.port())}, &rec);
  rec.checker = hc;
  REQUIRE(run_until([&] { return !rec.events.empty(); }, 5s));
  REQUIRE(rec.events.size() == 1);
  CHECK(rec.events[0].server == 0);
  CHECK_FALSE(rec.events[0].healthy);
  CHECK(rec.events[0].reason == "status 500");
  CHECK(rec.events[0].probes == 3);
  // The server saw three requests when the third answer flipped the state;
  // the fourth probe is at least an interval away.
  CHECK(srv.requests() == 3);
  CHECK_FALSE(hc->healthy(0));
  CHECK(hc->last_failure(0) == "status 500");

  // Further failures are not reported again.
  REQUIRE(run_until([&] { return hc->probes(0) >= 6; }, 5s));
  CHECK(rec.events.size() == 1);
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: recovery after exactly healthy_after successes", "[health]") {
  ProbeServer srv("EOO");
  Recorder rec;
  auto* hc = HealthChecker::start(loop(), fast_checks(2, 1), {server_at(srv.port())}, &rec);
  rec.checker = hc;
  REQUIRE(run_until([&] { return rec.events.size() == 2; }, 5s));
  CHECK_FALSE(rec.events[0].healthy);
  CHECK(rec.events[0].probes == 1);
  CHECK(rec.events[1].healthy);
  CHECK(rec.events[1].reason == "status 200");
  CHECK(rec.events[1].probes == 3);
  CHECK(hc->healthy(0));
  // The last failure stays on record for the operator.
  CHECK(hc->last_failure(0) == "status 500");
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: only consecutive results count", "[health]") {
  // Down after 2 failures in a row, up after 2 successes in a row: the
  // lone results in between restart the other count.
  ProbeServer srv("EOEOEEOEOO");
  Recorder rec;
  auto* hc = HealthChecker::start(loop(), fast_checks(2, 2), {server_at(srv.port())}, &rec);
  rec.checker = hc;
  REQUIRE(run_until([&] { return rec.events.size() == 2; }, 5s));
  CHECK_FALSE(rec.events[0].healthy);
  CHECK(rec.events[0].probes == 6);
  CHECK(rec.events[1].healthy);
  CHECK(rec.events[1].probes == 10);
  REQUIRE(run_until([&] { return hc->probes(0) >= 12; }, 5s));
  CHECK(rec.events.size() == 2);
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: 3xx and a 204 after a 100 Continue count as success",
                 "[health]") {
  ProbeServer redirect("R");
  ProbeServer interim("I");
  Recorder rec;
  auto* hc = HealthChecker::start(loop(), fast_checks(1, 1),
                                  {server_at(redirect.port()), server_at(interim.port())}, &rec,
                                  {false, false});
  rec.checker = hc;
  CHECK_FALSE(hc->healthy(0));
  REQUIRE(run_until([&] { return hc->healthy(0) && hc->healthy(1); }, 5s));
  REQUIRE(rec.events.size() == 2);
  for (const auto& e : rec.events) CHECK(e.healthy);
  CHECK(hc->last_failure(0).empty());
  CHECK(hc->last_failure(1).empty());
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: a hanging server fails by timeout", "[health]") {
  ProbeServer srv("H");
  Recorder rec;
  config::HealthCheck cfg = fast_checks(2, 2);
  cfg.timeout = 40ms;
  auto* hc = HealthChecker::start(loop(), cfg, {server_at(srv.port())}, &rec);
  rec.checker = hc;
  auto t0 = Clock::now();
  REQUIRE(run_until([&] { return !rec.events.empty(); }, 5s));
  auto took = Clock::now() - t0;
  CHECK_FALSE(rec.events[0].healthy);
  CHECK(rec.events[0].reason == "no status line within 40ms");
  CHECK(rec.events[0].probes == 2);
  // Two probes: the second starts an interval after the first (50 ms) and
  // times out 40 ms later.
  CHECK(took >= 85ms);
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: a refused connection fails", "[health]") {
  Recorder rec;
  auto* hc = HealthChecker::start(loop(), fast_checks(2, 1), {server_at(refused_port())}, &rec);
  rec.checker = hc;
  REQUIRE(run_until([&] { return !rec.events.empty(); }, 5s));
  CHECK_FALSE(rec.events[0].healthy);
  CHECK(rec.events[0].reason == std::string("connect: ") + uv_strerror(UV_ECONNREFUSED));
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: garbage and an endless status line fail; a huge body is not read",
                 "[health]") {
  ProbeServer garbage("G");
  ProbeServer endless("S");
  ProbeServer huge("B");
  Recorder rec;
  auto cfg = fast_checks(1, 1);
  cfg.timeout = 500ms;  // failures below must come from the response, not the clock
  cfg.interval = 600ms;
  auto* hc = HealthChecker::start(
      loop(), cfg, {server_at(garbage.port()), server_at(endless.port()), server_at(huge.port())},
      &rec);
  rec.checker = hc;
  // First probes at 0, 200 and 400 ms; each concludes well before the next.
  REQUIRE(run_until([&] { return hc->probes(0) && hc->probes(1) && hc->probes(2); }, 5s));
  CHECK_FALSE(hc->healthy(0));
  CHECK(hc->last_failure(0).rfind("not an HTTP response", 0) == 0);
  CHECK_FALSE(hc->healthy(1));
  CHECK(hc->last_failure(1) == "no status line in the first 16 KiB");
  CHECK(hc->healthy(2));
  CHECK(rec.events.size() == 2);
  hc->stop();
  // The checker hung up after the status line: the server's 1 GiB body was
  // cut off after little more than what the socket buffers hold.
  REQUIRE(run_until([&] { return huge.body_done(); }, 5s));
  CHECK(huge.body_sent() < (64u << 20));
}

TEST_CASE_METHOD(Fixture, "health: first probes are spread over the interval", "[health]") {
  ProbeServer a("O"), b("O"), c("O");
  Recorder rec;
  auto cfg = fast_checks();
  cfg.interval = 300ms;
  cfg.timeout = 200ms;
  auto* hc = HealthChecker::start(loop(), cfg,
                                  {server_at(a.port()), server_at(b.port()), server_at(c.port())},
                                  &rec);
  rec.checker = hc;
  REQUIRE(run_until([&] { return a.requests() && b.requests() && c.requests(); }, 5s));
  // Offsets are 0, 100 and 200 ms; a loaded machine may delay a probe but
  // cannot make the later ones earlier.
  CHECK(b.first_arrival() - a.first_arrival() >= 70ms);
  CHECK(c.first_arrival() - b.first_arrival() >= 70ms);
  hc->stop();
}

TEST_CASE_METHOD(Fixture, "health: stop closes every handle, also mid-probe and from the listener",
                 "[health]") {
  SECTION("mid-probe: connected and waiting for a hanging server") {
    ProbeServer srv("H");
    Recorder rec;
    auto cfg = fast_checks();
    cfg.timeout = 2s;
    cfg.interval = 3s;
    auto* hc = HealthChecker::start(loop(), cfg, {server_at(srv.port())}, &rec);
    rec.checker = hc;
    REQUIRE(run_until([&] { return srv.requests() == 1; }, 5s));
    hc->stop();
    hc->stop();  // idempotent
    // The fixture's uv_loop_close() == 0 proves nothing is left open.
  }
  SECTION("mid-connect and while waiting, with several servers") {
    ProbeServer srv("O");
    Recorder rec;
    auto* hc = HealthChecker::start(
        loop(), fast_checks(), {server_at(srv.port()), server_at(srv.port()), server_at(refused_port())},
        &rec);
    hc->stop();  // server 0's first probe is due, the others are waiting
  }
  SECTION("from the listener, while its own socket is closing") {
    ProbeServer srv("E");
    Recorder rec;
    rec.stop_on_event = true;
    auto* hc = HealthChecker::start(loop(), fast_checks(2, 1), {server_at(srv.port())}, &rec);
    rec.checker = hc;
    REQUIRE(run_until([&] { return !rec.events.empty(); }, 5s));
    CHECK(rec.checker == nullptr);
    // No further calls after stop().
    run_until([] { return false; }, 150ms);
    CHECK(rec.events.size() == 1);
  }
  SECTION("with no servers at all") {
    Recorder rec;
    HealthChecker::start(loop(), fast_checks(), {}, &rec)->stop();
  }
}

}  // namespace
}  // namespace sluice::proxy
