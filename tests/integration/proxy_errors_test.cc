// Errors and limits: malformed requests are refused with an exact status,
// the connection is closed and nothing reaches the backend; upstream
// failures give 502/504; timeouts and max_connections are enforced.
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string limits_config() {
  return simple_config("    limits: { max_header_bytes: 4KiB, max_body_bytes: 1KiB }\n");
}

// Printable form of raw bytes for failure messages.
std::string show(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 600)) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n\n";
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  if (bytes.size() > 600) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

// Sends `bytes` on a fresh connection and checks that sluice answers with
// one of `statuses`, closes the connection, forwards nothing to the backend,
// and still serves a normal request afterwards.
enum class Forwarded { Nothing, NoCompleteRequest };

void expect_rejected(std::string_view bytes, std::vector<int> statuses,
                     Forwarded forwarded = Forwarded::Nothing,
                     const std::string& config = limits_config()) {
  ProxyFixture f(config);
  f.backend().reset_stats();
  RawResult r = raw_exchange(f.port(), bytes, 3s);
  INFO("sent:\n" << show(bytes));
  INFO("received:\n" << show(r.bytes));
  INFO("status " << r.status);
  CHECK(std::find(statuses.begin(), statuses.end(), r.status) != statuses.end());
  CHECK(r.closed);
  CHECK(count_of(r.bytes, "HTTP/1.") == 1);  // one response, nothing after it
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 0);  // no complete request reached the backend
  if (forwarded == Forwarded::Nothing) {
    CHECK(s.max_active == 0);  // not even a request head
  }
  HttpResponse ok = get(f.port(), "/");
  INFO("follow-up GET: " << ok.error);
  CHECK(ok.status == 200);
  CHECK(ok.body.size() == 100);
}

const std::string kPost = "POST /echo HTTP/1.1\r\nHost: x\r\n";

}  // namespace

// --- framing ambiguities -------------------------------------------------------------

TEST_CASE("Content-Length with Transfer-Encoding is refused", "[errors]") {
  expect_rejected(kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                  {400});
}

TEST_CASE("two differing Content-Length headers are refused", "[errors]") {
  expect_rejected(kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400});
}

TEST_CASE("Content-Length with two differing values in one header is refused", "[errors]") {
  expect_rejected(kPost + "Content-Length: 5, 6\r\n\r\nhello!", {400});
}

TEST_CASE("a Transfer-Encoding whose final coding is not chunked is refused", "[errors]") {
  expect_rejected(kPost + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                  {400, 501});
}

TEST_CASE("Transfer-Encoding: gzip alone is refused", "[errors]") {
  expect_rejected(kPost + "Transfer-Encoding: gzip\r\n\r\nhello", {400, 501});
}

const std::string kBadChunk =
    kPost + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";

TEST_CASE("a bad chunk size is refused", "[errors]") {
  expect_rejected(kBadChunk, {400}, Forwarded::NoCompleteRequest);
}

// The body is read before the request takes an upstream slot, so a body that
// turns out malformed never lets even the head through.
TEST_CASE("a bad chunk size sent with the head: not even the head reaches the backend",
          "[errors]") {
  expect_rejected(kBadChunk, {400}, Forwarded::Nothing);
}

// --- malformed heads ---------------------------------------------------------------------

TEST_CASE("obs-fold is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", {400});
}

// RFC 9112 §5.1: a server MUST reject it with 400.
TEST_CASE("a space before the colon is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", {400});
}

TEST_CASE("a tab before the colon is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n", {400});
}

TEST_CASE("a space before the colon of Transfer-Encoding is refused", "[errors]") {
  expect_rejected(kPost + "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", {400});
}

TEST_CASE("bare LF line ends are refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\nHost: x\n\n", {400});
}

TEST_CASE("a bare LF inside an otherwise CRLF head is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", {400});
}

TEST_CASE("a bare CR is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", {400});
}

TEST_CASE("a NUL in a header value is refused", "[errors]") {
  static const char kNul[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
  expect_rejected(std::string(kNul, sizeof kNul - 1), {400});
}

TEST_CASE("a control character in a header value is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01" "b\r\n\r\n", {400});
}

TEST_CASE("a bad method is refused", "[errors]") {
  expect_rejected("G@T / HTTP/1.1\r\nHost: x\r\n\r\n", {400});
}

TEST_CASE("HTTP/1.2 is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.2\r\nHost: x\r\n\r\n", {400, 505});
}

TEST_CASE("a bad protocol name is refused", "[errors]") {
  expect_rejected("GET / HTTX/1.1\r\nHost: x\r\n\r\n", {400});
}

TEST_CASE("an HTTP/1.1 request without Host is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", {400});
}

TEST_CASE("an HTTP/1.1 request with two Host headers is refused", "[errors]") {
  expect_rejected("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", {400});
}

TEST_CASE("a Content-Length with a sign is refused", "[errors]") {
  expect_rejected(kPost + "Content-Length: +5\r\n\r\nhello", {400});
}

TEST_CASE("an overflowing chunk size is refused", "[errors]") {
  expect_rejected(kPost + "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
                  {400, 413}, Forwarded::NoCompleteRequest);
}

TEST_CASE("a lower-case protocol name is refused", "[errors]") {
  expect_rejected("GET / http/1.1\r\nHost: x\r\n\r\n", {400});
}

// --- limits ---------------------------------------------------------------------------------

TEST_CASE("a head over max_header_bytes gets 431", "[errors]") {
  SECTION("one big header") {
    expect_rejected("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n",
                    {431});
  }
  SECTION("many small headers") {
    std::string req = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 300; ++i) req += "X-H" + std::to_string(i) + ": 0123456789\r\n";
    req += "\r\n";
    REQUIRE(req.size() > 5000);
    expect_rejected(req, {431});
  }
}

TEST_CASE("a request line over max_header_bytes is refused", "[errors]") {
  expect_rejected("GET /" + std::string(5000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", {414, 431});
}

TEST_CASE("a body over max_body_bytes gets 413", "[errors]") {
  SECTION("announced by Content-Length") {
    expect_rejected(kPost + "Content-Length: 2000\r\n\r\n" + std::string(2000, 'x'), {413});
  }
  SECTION("Content-Length, body not sent") {
    expect_rejected(kPost + "Content-Length: 2000\r\n\r\n", {413});
  }
}

const std::string kBigChunked =
    kPost + "Transfer-Encoding: chunked\r\n\r\n" + chunked(std::string(1600, 'x'), 800);

TEST_CASE("a chunked body growing over max_body_bytes gets 413", "[errors]") {
  expect_rejected(kBigChunked, {413}, Forwarded::NoCompleteRequest);
}

// The body is checked against the limit before anything goes upstream.
TEST_CASE("a chunked body over max_body_bytes sent with the head: nothing reaches the backend",
          "[errors]") {
  expect_rejected(kBigChunked, {413}, Forwarded::Nothing);
}

// --- upstream failures ---------------------------------------------------------------------

TEST_CASE("connection refused upstream gives 502", "[errors]") {
  for (const char* retries : {"    retries: { attempts: 0 }\n", "    retries: { attempts: 2 }\n"}) {
    ProxyFixture f(simple_config("", retries, {"{CLOSED}"}), Setup{.backends = 0, .backend_args = {}});
    auto t0 = Clock::now();
    HttpResponse r = get(f.port(), "/");
    INFO(retries << r.error);
    CHECK(r.status == 502);
    CHECK(Clock::now() - t0 < 3s);
  }
}

TEST_CASE("garbage from the upstream gives 502", "[errors]") {
  ProxyFixture f(simple_config());
  HttpResponse r = get(f.port(), "/garbage");
  INFO(r.error);
  CHECK(r.status == 502);
  CHECK(get(f.port(), "/").status == 200);
}

TEST_CASE("an upstream slower than timeouts.response gives 504", "[errors]") {
  ProxyFixture f(simple_config("", "    timeouts: { response: 300ms }\n"));
  auto t0 = Clock::now();
  HttpResponse r = get(f.port(), "/sleep?ms=2000");
  auto took = Clock::now() - t0;
  INFO(r.error);
  CHECK(r.status == 504);
  CHECK(took >= 250ms);
  CHECK(took < 1500ms);
  CHECK(get(f.port(), "/").status == 200);
}

TEST_CASE("an upstream dying mid-response closes the client connection, body incomplete",
          "[errors]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(), build_request("GET", "/reset-mid")));
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.header("Content-Length") == "1000");
  CHECK_FALSE(r.complete);
  CHECK(r.body.size() < 1000);
  CHECK((r.peer_closed || wait_peer_closed(fd.get(), 3s)));
  CHECK(get(f.port(), "/").status == 200);
}

TEST_CASE("a chunked response cut by a dying upstream has no terminating chunk", "[errors]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=209715200&chunked=1")));
  std::string raw;
  while (raw.size() < 1024 * 1024) {
    std::string part = recv_some(fd.get(), 65536, 5s);
    REQUIRE_FALSE(part.empty());
    raw += part;
  }
  f.backend().process().signal(SIGKILL);
  bool closed = false;
  raw += read_until_close(fd.get(), 10s, &closed);
  INFO("received " << raw.size() << " bytes");
  CHECK(closed);
  CHECK(status_of(raw) == 200);
  CHECK(raw.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(raw.size() < 209715200u);
  CHECK(raw.find("\r\n0\r\n\r\n") == std::string::npos);
}

TEST_CASE("an upstream response with Content-Length and Transfer-Encoding gives 502", "[errors]") {
  ScriptedUpstream up([](ScriptedUpstream& self, int fd) {
    if (self.read_request(fd, 5s).empty()) return;
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n0\r\n\r\n",
             5s);
  });
  ProxyFixture f(simple_config("", "", {"{S0}"}), Setup{.backends = 0, .backend_args = {}},
                 {up.port()});
  HttpResponse r = get(f.port(), "/");
  INFO(r.error << "\n" << r.body);
  CHECK(r.status == 502);
}

TEST_CASE("an upstream response with two Content-Lengths gives 502", "[errors]") {
  ScriptedUpstream up([](ScriptedUpstream& self, int fd) {
    if (self.read_request(fd, 5s).empty()) return;
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello12", 5s);
  });
  ProxyFixture f(simple_config("", "", {"{S0}"}), Setup{.backends = 0, .backend_args = {}},
                 {up.port()});
  HttpResponse r = get(f.port(), "/");
  INFO(r.error << "\n" << r.body);
  CHECK(r.status == 502);
}

TEST_CASE("a client that stops reading is cut after timeouts.send", "[errors]") {
  ProxyFixture f(simple_config("    timeouts: { send: 500ms }\n"));
  UniqueFd fd = connect_or_fail(f.port());
  int small = 64 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=104857600")));
  std::this_thread::sleep_for(2500ms);  // buffers fill up, then nothing moves
  bool closed = false;
  std::string got = read_until_close(fd.get(), 10s, &closed);
  INFO("received " << got.size() << " bytes");
  CHECK(closed);
  CHECK(got.size() < 104857600u);
  // The upstream connection was let go too: the backend has nothing in flight.
  auto deadline = Clock::now() + 3s;
  while (f.backend().stats().active != 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK(f.backend().stats().active == 0);
  CHECK(get(f.port(), "/").status == 200);
}

// --- timeouts and connection limits -----------------------------------------------------

TEST_CASE("client timeouts", "[errors]") {
  ProxyFixture f(simple_config("    timeouts: { header: 500ms, body: 500ms, idle: 500ms }\n"));

  SECTION("a half-sent head gets 408 or a close within the header timeout") {
    f.backend().reset_stats();
    UniqueFd fd = connect_or_fail(f.port());
    auto t0 = Clock::now();
    REQUIRE(send_all(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\n"));
    bool closed = false;
    std::string got = read_until_close(fd.get(), 5s, &closed);
    auto took = Clock::now() - t0;
    INFO(show(got));
    CHECK(closed);
    CHECK((got.empty() || status_of(got) == 408));
    CHECK(took >= 400ms);
    CHECK(took < 2500ms);
    CHECK(f.backend().stats().max_active == 0);
  }
  SECTION("the header timeout is not reset by trickling bytes") {
    UniqueFd fd = connect_or_fail(f.port());
    auto t0 = Clock::now();
    REQUIRE(send_all(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    bool closed = false;
    std::string got;
    for (int i = 0; i < 30 && !closed && got.empty(); ++i) {
      if (!send_all(fd.get(), "a", 1s)) break;
      got = recv_some(fd.get(), 4096, 100ms, &closed);
    }
    if (!closed) {
      got += read_until_close(fd.get(), 3s, &closed);
    }
    INFO(show(got));
    CHECK(closed);
    CHECK((got.empty() || status_of(got) == 408));
    CHECK(Clock::now() - t0 < 2500ms);
  }
  SECTION("a stalled body is cut after the body timeout") {
    UniqueFd fd = connect_or_fail(f.port());
    auto t0 = Clock::now();
    REQUIRE(send_all(fd.get(), kPost + "Content-Length: 10\r\n\r\nhello"));
    bool closed = false;
    std::string got = read_until_close(fd.get(), 5s, &closed);
    INFO(show(got));
    CHECK(closed);
    CHECK(Clock::now() - t0 < 2500ms);
    CHECK(got.find("hello") == std::string::npos);  // no complete echo
  }
  SECTION("an idle keep-alive connection is closed after the idle timeout") {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), build_request("GET", "/")));
    HttpResponse r = read_response(fd.get(), 5s);
    REQUIRE(r.status == 200);
    REQUIRE(r.keep_alive);
    auto t0 = Clock::now();
    CHECK(wait_peer_closed(fd.get(), 3s));
    auto took = Clock::now() - t0;
    CHECK(took >= 400ms);
    CHECK(took < 2500ms);
  }
}

TEST_CASE("max_connections: a connection over the cap is accepted and closed", "[errors]") {
  ProxyFixture f(simple_config("    max_connections: 2\n") + "admin: { listen: \"127.0.0.1:0\" }\n");
  const uint16_t admin = admin_port(f.sluice());
  const std::string refused =
      "sluice_connections_refused_total{listener=\"web\",reason=\"max_connections\"}";
  UniqueFd a = connect_or_fail(f.port());
  UniqueFd b = connect_or_fail(f.port());
  for (int fd : {a.get(), b.get()}) {
    REQUIRE(send_all(fd, build_request("GET", "/")));
    HttpResponse r = read_response(fd, 5s);
    REQUIRE(r.status == 200);
    REQUIRE(r.keep_alive);
  }
  UniqueFd c = connect_or_fail(f.port());
  send_all(c.get(), build_request("GET", "/"), 1s);  // may fail: the peer is gone
  bool closed = false;
  std::string got = read_until_close(c.get(), 3s, &closed);
  INFO(show(got));
  CHECK(closed);
  CHECK(status_of(got) == 0);  // no answer
  // Counted, so an operator sees the cap biting (the admin connection is
  // not on this listener).
  CHECK(metric_sample(get(admin, "/metrics").body, refused) == 1);
  // The first two still work.
  REQUIRE(send_all(a.get(), build_request("GET", "/")));
  CHECK(read_response(a.get(), 5s).status == 200);

  // Closing one frees a place.
  b.reset();
  int status = 0;
  auto deadline = Clock::now() + 3s;
  while (status != 200 && Clock::now() < deadline) {
    status = get(f.port(), "/").status;
    if (status != 200) std::this_thread::sleep_for(50ms);
  }
  CHECK(status == 200);
}
