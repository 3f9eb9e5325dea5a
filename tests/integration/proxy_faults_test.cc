// Fault injection (docs/security.md, "Faults"): the upstream refuses,
// resets, hangs, sends garbage or an oversized head, closes a pooled
// connection as it is reused; the client resets mid-upload and
// mid-download. Each fault gets its documented answer, and afterwards
// sluice holds exactly the descriptors it held before (no socket, timer or
// pooled connection left behind) and its RSS is back within a small margin.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Repetitions of a fault after the first one: enough that a leak of one
// descriptor, or of a buffer, per fault shows.
constexpr int kRepeats = 20;

// RSS may grow by this much over the run of a fault after its first one
// (allocator arenas and the free lists reach their working size then).
#if defined(SLUICE_NO_POOLS)
// Sanitizer build: freed memory sits in ASan's quarantine first.
constexpr int64_t kRssSlackKiB = 24 * 1024;
#else
constexpr int64_t kRssSlackKiB = 2 * 1024;
#endif

#if defined(SLUICE_NO_POOLS)
// Sanitizer build. ASan keeps freed memory in a quarantine (256 MiB) before
// reusing it, which RSS would show as growth: the processes a fault test
// starts get a small one. The variable is put back at once.
class SmallQuarantine {
 public:
  SmallQuarantine() {
    const char* old = std::getenv("ASAN_OPTIONS");
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    std::string v = had_ && !old_.empty() ? old_ + ":" : "";
    ::setenv("ASAN_OPTIONS", (v + "quarantine_size_mb=8").c_str(), 1);
  }
  ~SmallQuarantine() {
    if (had_) ::setenv("ASAN_OPTIONS", old_.c_str(), 1);
    else ::unsetenv("ASAN_OPTIONS");
  }
  SmallQuarantine(const SmallQuarantine&) = delete;
  SmallQuarantine& operator=(const SmallQuarantine&) = delete;

 private:
  std::string old_;
  bool had_ = false;
};
#endif

// The backends and sluice of a fault test.
ProxyFixture start(const std::string& yaml, Setup setup = {}, std::vector<uint16_t> scripted = {}) {
#if defined(SLUICE_NO_POOLS)
  SmallQuarantine quarantine;
#endif
  return ProxyFixture(yaml, std::move(setup), std::move(scripted));
}

// Pooled upstream connections live 300 ms, so "no connection left" is a
// state the test can wait for: then sluice's descriptors are its fixed set.
const std::string kUpstreamKeys =
    "    retries: { attempts: 0 }\n"
    "    keepalive: { max_idle: 8, idle_timeout: 300ms }\n"
    "    timeouts: { connect: 1s, response: 500ms }\n";

std::string fault_config(const std::vector<std::string>& servers = {"{B0}"},
                         const std::string& upstream_extra = kUpstreamKeys) {
  return simple_config("    limits: { max_body_bytes: 64MiB }\n", upstream_extra, servers);
}

// Sluice's fixed descriptors: with no client and no upstream connection.
// A plain request first, so nothing opened lazily is counted as a leak.
int settled_fds(ProxyFixture& f, uint16_t warm_port) {
  HttpResponse warm = get(warm_port, "/");
  (void)warm;
  // Until the pooled connection has expired and the count is steady.
  int last = -1;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(100ms);
    int n = fd_count(f.sluice().pid());
    if (n == last) break;
    last = n;
  }
  std::this_thread::sleep_for(400ms);  // past one idle_timeout for sure
  return fd_count(f.sluice().pid());
}

// Runs `fault` once (the warm-up), notes RSS, runs it kRepeats more times,
// then checks that the descriptors return to `baseline_fds` exactly and RSS
// to the noted value within kRssSlackKiB.
void expect_no_residue(ProxyFixture& f, int baseline_fds, const std::function<void()>& fault,
                       int repeats = kRepeats) {
  const pid_t pid = f.sluice().pid();
  fault();
  const int64_t rss_after_first = f.sluice().rss_kib();
  REQUIRE(rss_after_first > 0);
  for (int i = 0; i < repeats; ++i) fault();
  int fds = wait_fds(pid, baseline_fds, 5s);
  INFO("sluice's descriptors now:\n" << fd_listing(pid));
  CHECK(fds == baseline_fds);
  const int64_t rss = f.sluice().rss_kib();
  INFO("VmRSS after the first fault " << rss_after_first << " KiB, after " << repeats + 1
                                       << " faults " << rss << " KiB");
  CHECK(rss - rss_after_first <= kRssSlackKiB);
  CHECK_FALSE(f.sluice().process().wait_exit(0ms).has_value());
}

// With a healthy backend behind it, sluice serves normally after the faults.
void expect_serving(ProxyFixture& f) {
  HttpResponse r = get(f.port(), "/");
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body.size() == 100);
}

// An upstream that reads a request head, then resets the connection.
void reset_after_head(ScriptedUpstream& self, int fd) {
  if (self.read_request(fd, 5s).empty()) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  // The caller closes fd: with SO_LINGER 0 that is a reset.
}

// A GET whose response must be `status` and end the connection.
void expect_status(uint16_t port, std::string_view target, int status) {
  HttpResponse r = get(port, target);
  INFO(target << ": " << r.error);
  CHECK(r.status == status);
}

}  // namespace

// --- the upstream side ---------------------------------------------------------------------

TEST_CASE("faults: an upstream refusing connections gives 502", "[faults]") {
  ProxyFixture f = start(fault_config({"{CLOSED}"}), Setup{.backends = 0, .backend_args = {}});
  // Nothing to warm the pool with: every attempt is refused.
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] { expect_status(f.port(), "/", 502); });
}

TEST_CASE("faults: an upstream resetting during the request gives 502", "[faults]") {
  // The head arrives, the upload is still going when the app resets.
  ScriptedUpstream app([](ScriptedUpstream&, int fd) {
    if (recv_some(fd, 4096, 5s).empty()) return;
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  });
  ProxyFixture f = start(fault_config({"{S0}"}), Setup{.backends = 0, .backend_args = {}}, {app.port()});
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] {
    UniqueFd fd = connect_or_fail(f.port());
    // Whether sluice buffers the body first or streams it, the app resets
    // while the request is still going to it. The send may fail if sluice
    // has answered and closed already.
    send_all(fd.get(), "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n" +
                           std::string(4194304, 'u'));
    HttpResponse r = read_response(fd.get(), 5s);
    INFO(r.error);
    // The connection may stay open if sluice had read the whole body.
    CHECK(r.status == 502);
  });
}

TEST_CASE("faults: an upstream resetting before any response byte gives 502", "[faults]") {
  ScriptedUpstream app(&reset_after_head);
  ProxyFixture f = start(fault_config({"{S0}"}), Setup{.backends = 0, .backend_args = {}}, {app.port()});
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] { expect_status(f.port(), "/", 502); });
}

TEST_CASE("faults: an upstream resetting mid-response closes the client, body incomplete",
          "[faults]") {
  ProxyFixture f = start(fault_config());
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), build_request("GET", "/reset-mid")));
    HttpResponse r = read_response(fd.get(), 5s);
    CHECK(r.status == 200);
    CHECK_FALSE(r.complete);
    CHECK(r.body.size() < 1000);
    CHECK((r.peer_closed || wait_peer_closed(fd.get(), 3s)));
  });
  expect_serving(f);
}

TEST_CASE("faults: an upstream hanging before its response gives 504", "[faults]") {
  ProxyFixture f = start(fault_config());
  int baseline = settled_fds(f, f.port());
  // Each one takes timeouts.response (500 ms): fewer repetitions.
  expect_no_residue(f, baseline, [&] { expect_status(f.port(), "/sleep?ms=3000", 504); }, 6);
  expect_serving(f);
}

// The head went out to the client already: all sluice can do once
// timeouts.response passes without a byte is end the connection.
TEST_CASE("faults: an upstream hanging after its headers closes the client, body incomplete",
          "[faults]") {
  ProxyFixture f = start(fault_config());
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] {
    UniqueFd fd = connect_or_fail(f.port());
    auto t0 = Clock::now();
    REQUIRE(send_all(fd.get(), build_request("GET", "/hang-after-headers")));
    HttpResponse r = read_response(fd.get(), 5s);
    CHECK(r.status == 200);
    CHECK(r.header("Content-Length") == "100");
    CHECK_FALSE(r.complete);
    CHECK((r.peer_closed || wait_peer_closed(fd.get(), 3s)));
    auto took = Clock::now() - t0;
    CHECK(took >= 400ms);  // timeouts.response: 500ms
    CHECK(took < 3s);
  }, 6);
  expect_serving(f);
}

TEST_CASE("faults: garbage from the upstream gives 502", "[faults]") {
  ProxyFixture f = start(fault_config());
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] { expect_status(f.port(), "/garbage", 502); });
  expect_serving(f);
}

TEST_CASE("faults: a response head over 64 KiB gives 502", "[faults]") {
  ScriptedUpstream app([](ScriptedUpstream& self, int fd) {
    while (!self.read_request(fd, 2s).empty()) {
      std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n";
      for (int i = 0; i < 100; ++i) head += "X-Big-" + std::to_string(i) + ": " + std::string(1000, 'h') + "\r\n";
      if (!send_all(fd, head + "\r\nok", 5s)) return;
    }
  });
  ProxyFixture f = start(fault_config({"{S0}"}), Setup{.backends = 0, .backend_args = {}}, {app.port()});
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] { expect_status(f.port(), "/", 502); });
}

// The app answers one request, then closes the kept-alive connection as
// soon as the next request arrives on it: the race of a pooled connection
// that the app closed while sluice was reusing it. A GET is replayed on a
// fresh connection (retries.attempts), a POST is not.
TEST_CASE("faults: a pooled connection closed as it is reused", "[faults]") {
  ScriptedUpstream app([](ScriptedUpstream& self, int fd) {
    if (self.read_request(fd, 5s).empty()) return;
    if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", 5s)) return;
    self.read_request(fd, 5s);  // and close without a byte
  });
  const std::string retry_once =
      "    retries: { attempts: 1 }\n"
      "    keepalive: { max_idle: 8, idle_timeout: 300ms }\n"
      "    timeouts: { connect: 1s, response: 500ms }\n";
  ProxyFixture f = start(fault_config({"{S0}"}, retry_once),
                         Setup{.backends = 0, .backend_args = {}}, {app.port()});
  int baseline = settled_fds(f, f.port());

  SECTION("a GET is retried and succeeds") {
    expect_no_residue(f, baseline, [&] {
      UniqueFd fd = connect_or_fail(f.port());
      for (int i = 0; i < 2; ++i) {
        REQUIRE(send_all(fd.get(), build_request("GET", "/")));
        HttpResponse r = read_response(fd.get(), 5s);
        INFO("request " << i << ": " << r.error);
        CHECK(r.status == 200);
        CHECK(r.body == "first");
      }
    });
  }
  SECTION("a POST is not replayed: 502") {
    expect_no_residue(f, baseline, [&] {
      UniqueFd fd = connect_or_fail(f.port());
      REQUIRE(send_all(fd.get(), build_request("POST", "/", {}, "one")));
      HttpResponse first = read_response(fd.get(), 5s);
      CHECK(first.status == 200);
      REQUIRE(send_all(fd.get(), build_request("POST", "/", {}, "two")));
      HttpResponse second = read_response(fd.get(), 5s);
      INFO(second.error);
      CHECK(second.status == 502);
    });
  }
}

// --- the client side -----------------------------------------------------------------------

TEST_CASE("faults: a client resetting mid-upload frees everything", "[faults]") {
  ProxyFixture f = start(fault_config());
  int baseline = settled_fds(f, f.port());
  const std::string part(1024 * 1024, 'c');
  expect_no_residue(f, baseline, [&] {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), "POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n"));
    REQUIRE(send_all(fd.get(), part));  // 1 MiB of 16: the body is streaming upstream
    std::this_thread::sleep_for(20ms);
    reset_close(fd);
  });
  // The app's request was abandoned too: nothing is left running there.
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active != 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK(f.backend().stats().active == 0);
  expect_serving(f);
}

TEST_CASE("faults: a client resetting mid-download frees everything", "[faults]") {
  ProxyFixture f = start(fault_config());
  int baseline = settled_fds(f, f.port());
  expect_no_residue(f, baseline, [&] {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=104857600")));
    size_t got = 0;
    while (got < 1024 * 1024) {
      std::string part = recv_some(fd.get(), 65536, 5s);
      REQUIRE_FALSE(part.empty());
      got += part.size();
    }
    reset_close(fd);
  });
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active != 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK(f.backend().stats().active == 0);
  expect_serving(f);
}
