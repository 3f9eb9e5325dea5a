// Connection limits: max_connections_per_ip, the descriptor limit (EMFILE)
// and slowloris clients. The 19,000-connection run is tests/bench/many_conns.sh.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <regex>
#include <thread>
#include <vector>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A connection to 127.0.0.1:port from the local address `from` (any
// 127.0.0.0/8 address is the loopback interface on Linux).
UniqueFd connect_from(const char* from, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_in local{};
  local.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, from, &local.sin_addr) == 1);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), sizeof remote) == 0);
  return fd;
}

// One GET on an open connection; its status (0 if none).
int get_on(int fd) {
  if (!send_all(fd, build_request("GET", "/"), 2s)) return 0;
  return read_response(fd, 5s).status;
}

// Whether the connection was closed without a response.
bool closed_unanswered(int fd) {
  send_all(fd, build_request("GET", "/"), 1s);  // may fail: the peer is gone
  bool closed = false;
  std::string got = read_until_close(fd, 3s, &closed);
  INFO(got);
  return closed && got.empty();
}

// sluice with RLIMIT_NOFILE `nofile`, started through the shell so the
// limit applies to it and to nothing else; the same PID (exec).
class LimitedSluice {
 public:
  LimitedSluice(const std::string& yaml, int nofile) : config_(yaml) {
    proc_ = std::make_unique<Process>(std::vector<std::string>{
        "/bin/sh", "-c", "ulimit -n " + std::to_string(nofile) + " && exec \"$0\" --config \"$1\"",
        SLUICE_BINARY, config_.path()});
    std::string line;
    bool ready = proc_->wait_for_line(R"(listener web listening on 127\.0\.0\.1:\d+)", 10s, &line);
    INFO(proc_->output());
    REQUIRE(ready);
    std::smatch m;
    REQUIRE(std::regex_search(line, m, std::regex(R"(127\.0\.0\.1:(\d+))")));
    port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  uint16_t port() const { return port_; }
  Process& process() { return *proc_; }

 private:
  TempFile config_;
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
};

}  // namespace

// --- max_connections_per_ip ----------------------------------------------------------------

TEST_CASE("limits: max_connections_per_ip closes a client's connection over the limit",
          "[limits]") {
  ProxyFixture f(simple_config("    max_connections_per_ip: 2\n") +
                 "admin: { listen: \"127.0.0.1:0\" }\n");
  const uint16_t admin = admin_port(f.sluice());
  auto refused = [&] {
    return metric_sample(
        get(admin, "/metrics").body,
        "sluice_connections_refused_total{listener=\"web\",reason=\"max_connections_per_ip\"}");
  };
  CHECK(refused() == 0);
  UniqueFd a = connect_from("127.0.0.1", f.port());
  UniqueFd b = connect_from("127.0.0.1", f.port());
  CHECK(get_on(a.get()) == 200);
  CHECK(get_on(b.get()) == 200);

  SECTION("a third connection from the same address is closed unanswered") {
    UniqueFd c = connect_from("127.0.0.1", f.port());
    CHECK(closed_unanswered(c.get()));
    CHECK(refused() == 1);
    // The first two are untouched.
    CHECK(get_on(a.get()) == 200);
    CHECK(get_on(b.get()) == 200);
  }
  SECTION("other addresses have limits of their own") {
    UniqueFd c = connect_from("127.0.0.2", f.port());
    UniqueFd d = connect_from("127.0.0.2", f.port());
    CHECK(get_on(c.get()) == 200);
    CHECK(get_on(d.get()) == 200);
    UniqueFd e = connect_from("127.0.0.2", f.port());
    CHECK(closed_unanswered(e.get()));
  }
  SECTION("a closed connection frees its place") {
    b.reset();
    // sluice notices the close a moment later: until then a new connection
    // is still one too many.
    UniqueFd c;
    auto deadline = Clock::now() + 3s;
    while (Clock::now() < deadline) {
      c = connect_from("127.0.0.1", f.port());
      if (get_on(c.get()) == 200) break;
      c.reset();
      std::this_thread::sleep_for(20ms);
    }
    REQUIRE(c.valid());
    // Freed places do not accumulate: with `a` and `c` open the limit holds.
    UniqueFd d = connect_from("127.0.0.1", f.port());
    CHECK(closed_unanswered(d.get()));
    CHECK(get_on(a.get()) == 200);
    CHECK(get_on(c.get()) == 200);
  }
}

TEST_CASE("limits: max_connections_per_ip 0 means no limit", "[limits]") {
  ProxyFixture f(simple_config());
  std::vector<UniqueFd> conns;
  for (int i = 0; i < 50; ++i) conns.push_back(connect_from("127.0.0.1", f.port()));
  for (auto& c : conns) CHECK(get_on(c.get()) == 200);
}

// --- EMFILE --------------------------------------------------------------------------------

// With 64 descriptors sluice runs out after a few dozen connections. The
// connections it cannot take must be accepted and closed, not left in the
// backlog, and without the loop spinning on the ever-ready listener.
TEST_CASE("limits: at EMFILE the loop neither spins nor crashes, and recovers", "[limits]") {
  Backend backend;
  LimitedSluice s(fill(simple_config() + "admin: { listen: \"127.0.0.1:0\" }\n",
                       {{"B0", std::to_string(backend.port())}}),
                  64);
  const uint16_t admin = admin_port(s.process());
  const pid_t pid = s.process().pid();
  REQUIRE(get(s.port(), "/").status == 200);
  const int fds_before = fd_count(pid);
  INFO("sluice holds " << fds_before << " descriptors before the flood");
  REQUIRE(fds_before > 0);
  REQUIRE(fds_before < 40);

  // Flood for 2 s: keep opening connections and hold every one.
  const int64_t cpu_before = cpu_time_ms(pid);
  std::vector<UniqueFd> flood;
  auto flood_end = Clock::now() + 2s;
  while (Clock::now() < flood_end) {
    if (flood.size() < 2000) {
      std::string error;
      UniqueFd fd = connect_tcp("127.0.0.1", s.port(), 1s, &error);
      if (fd.valid()) flood.push_back(std::move(fd));
    }
    std::this_thread::sleep_for(1ms);
  }
  const int64_t cpu_used = cpu_time_ms(pid) - cpu_before;
  INFO("sluice used " << cpu_used << " ms of CPU during a 2 s flood of " << flood.size()
                      << " connections");
  // A loop spinning on the listener burns a whole core: about 2000 ms.
  CHECK(cpu_used < 600);

  // Those sluice could not keep were closed, not left in the backlog.
  std::this_thread::sleep_for(200ms);
  size_t closed = 0;
  for (auto& fd : flood) {
    if (wait_peer_closed(fd.get(), 0ms)) ++closed;
  }
  size_t still_open = flood.size() - closed;
  INFO(closed << " closed by sluice, " << still_open << " held");
  CHECK(closed > 0);
  CHECK(still_open <= 64);

  // Still alive, and serving again once the flood is gone.
  flood.clear();
  CHECK_FALSE(s.process().wait_exit(0ms).has_value());
  int status = 0;
  auto deadline = Clock::now() + 5s;
  while (status != 200 && Clock::now() < deadline) {
    status = get(s.port(), "/").status;
    if (status != 200) std::this_thread::sleep_for(50ms);
  }
  CHECK(status == 200);
  CHECK(wait_fds(pid, fds_before, 5s) <= fds_before + 1);  // + a pooled upstream connection
  // The shed connections were counted.
  CHECK(metric_sample(get(admin, "/metrics").body,
                      "sluice_connections_refused_total{listener=\"web\",reason=\"fd_limit\"}") > 0);
}

// --- slowloris -----------------------------------------------------------------------------

TEST_CASE("limits: slowloris clients are cut at the header timeout, others are served",
          "[limits]") {
  ProxyFixture f(simple_config("    timeouts: { header: 1s }\n"));
  constexpr int kSlow = 20;
  std::atomic<int> cut_in_time{0};
  std::atomic<int> answered_408_or_closed{0};
  std::atomic<int> not_started{0};
  std::atomic<bool> slow_done{false};
  std::vector<std::chrono::milliseconds> lifetimes(kSlow);

  // No Catch2 macro runs on these threads (see run_parallel); they count,
  // and the test's thread asserts after the join.
  std::thread slow([&] {
    run_parallel(kSlow, [&](int i) {
      UniqueFd fd = connect_tcp("127.0.0.1", f.port(), 5s);
      auto t0 = Clock::now();
      if (!fd.valid() || !send_all(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")) {
        ++not_started;
        return;
      }
      bool closed = false;
      std::string got;
      // A byte every 300 ms: each one resets nothing.
      for (int n = 0; n < 20 && !closed && got.empty(); ++n) {
        got = recv_some(fd.get(), 4096, 300ms, &closed);
        if (closed || !got.empty()) break;
        if (!send_all(fd.get(), "a", 1s)) {
          closed = true;
          break;
        }
      }
      if (!closed) got += read_until_close(fd.get(), 2s, &closed);
      auto life = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
      lifetimes[static_cast<size_t>(i)] = life;
      if (closed && (got.empty() || status_of(got) == 408)) ++answered_408_or_closed;
      if (life >= 900ms && life < 2000ms) ++cut_in_time;
    });
    slow_done = true;
  });

  // Meanwhile a normal client keeps getting answers, promptly.
  int served = 0;
  int failed = 0;
  auto worst = 0ms;
  // Nor may this loop throw (REQUIRE) while `slow` is joinable.
  std::string error;
  UniqueFd fd = connect_tcp("127.0.0.1", f.port(), 5s, &error);
  while (!slow_done) {
    auto t0 = Clock::now();
    HttpResponse r;
    if (fd.valid() && send_all(fd.get(), build_request("GET", "/"))) r = read_response(fd.get(), 5s);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    worst = std::max(worst, took);
    if (r.status == 200) ++served;
    else ++failed;
    std::this_thread::sleep_for(20ms);
  }
  slow.join();
  std::string lives;
  for (auto l : lifetimes) lives += std::to_string(l.count()) + " ";
  INFO("slow clients lived (ms): " << lives);
  INFO("normal client connect: " << (error.empty() ? "ok" : error));
  INFO("normal client: " << served << " served, " << failed << " failed, slowest " << worst.count()
                         << " ms");
  CHECK(not_started == 0);
  CHECK(answered_408_or_closed == kSlow);
  CHECK(cut_in_time == kSlow);
  CHECK(failed == 0);
  CHECK(served >= 20);
  CHECK(worst < 500ms);
}

// --- both limits across event loops -----------------------------------------------------

TEST_CASE("limits: with io_threads 2 both connection limits count across the loops",
          "[limits][io_threads]") {
  ProxyFixture f("io_threads: 2\n" +
                 simple_config("    max_connections: 5\n    max_connections_per_ip: 3\n") +
                 "admin: { listen: \"127.0.0.1:0\" }\n");
  const uint16_t admin = admin_port(f.sluice());
  auto metric = [&](const std::string& series) {
    return metric_sample(get(admin, "/metrics").body, series);
  };
  // A connection refused for its address still counts against
  // max_connections until it is released, a moment after the client sees it
  // closed: each next connection waits for the count to settle.
  auto wait_open = [&](double n) {
    auto deadline = Clock::now() + 3s;
    while (metric("sluice_connections_open") != n && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    return metric("sluice_connections_open") == n;
  };
  const std::string refused = "sluice_connections_refused_total{listener=\"web\",reason=";

  // Ten connections from one address, one after another. The kernel hashes
  // each to one of the two loops' sockets, so both loops take some (all on
  // one: odds of 2^-9); three are served, wherever they landed.
  std::vector<UniqueFd> kept;
  for (int i = 0; i < 10; ++i) {
    UniqueFd c = connect_from("127.0.0.1", f.port());
    if (get_on(c.get()) == 200) kept.push_back(std::move(c));
    REQUIRE(wait_open(static_cast<double>(kept.size())));
  }
  CHECK(kept.size() == 3);
  CHECK(metric("sluice_loop_connections_accepted_total{loop=\"0\"}") > 0);
  CHECK(metric("sluice_loop_connections_accepted_total{loop=\"1\"}") > 0);
  CHECK(metric(refused + "\"max_connections_per_ip\"}") == 7);

  // max_connections 5: two more fit, from other addresses, and no more.
  for (int i = 2; i <= 7; ++i) {
    const std::string from = "127.0.0." + std::to_string(i);
    UniqueFd c = connect_from(from.c_str(), f.port());
    if (get_on(c.get()) == 200) kept.push_back(std::move(c));
  }
  CHECK(kept.size() == 5);
  CHECK(metric(refused + "\"max_connections\"}") == 4);
  for (auto& c : kept) CHECK(get_on(c.get()) == 200);

  // Closing one of 127.0.0.1's frees a place in both counts, whichever
  // loop held it: a new connection from that address is served.
  kept.front().reset();
  REQUIRE(wait_open(4));
  UniqueFd again = connect_from("127.0.0.1", f.port());
  CHECK(get_on(again.get()) == 200);
}
