// Upstream side: connection reuse, stale pooled connections, balancing,
// response framings, interim responses and WebSocket tunnels.
#include <catch2/catch.hpp>
#include <atomic>
#include <thread>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/hash.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

// A scripted upstream that answers every request on a connection with
// `response` (and closes afterwards when `close_after`).
ScriptedUpstream::Handler canned(std::string response, bool close_after) {
  return [response = std::move(response), close_after](ScriptedUpstream& self, int fd) {
    for (;;) {
      if (self.read_request(fd, 5s).empty()) return;
      if (!send_all(fd, response, 5s)) return;
      if (close_after) return;
    }
  };
}

std::string scripted_config() { return simple_config("", "", {"{S0}"}); }

}  // namespace

TEST_CASE("upstream connections are reused", "[upstream]") {
  ProxyFixture f(simple_config());
  f.backend().reset_stats();
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = get(f.port(), "/");  // a new client connection each time
    INFO(i << ": " << r.error);
    REQUIRE(r.status == 200);
  }
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 10);
  CHECK(s.connections == 1);
}

TEST_CASE("a steady load past keepalive.max_idle keeps reusing its connections", "[upstream]") {
  ProxyFixture f(simple_config("", "    keepalive: { max_idle: 2, idle_timeout: 500ms }\n"));
  f.backend().reset_stats();
  // 12 clients at once, each request held 20 ms by the app: 12 requests in
  // flight, finishing in waves. Keeping only max_idle (2) of the
  // connections a wave frees would open about 10 anew for every wave.
  std::atomic<int> ok{0};
  run_parallel(12, [&](int) {
    for (int k = 0; k < 15; ++k) {
      if (get(f.port(), "/sleep?ms=20").status == 200) ++ok;
    }
  });
  CHECK(ok.load() == 180);
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 180);
  INFO(s.connections << " upstream connections for 180 requests");
  CHECK(s.connections <= 16);

  // Once the load is gone they close at idle_timeout like any idle
  // connection: a request after it needs a new one.
  std::this_thread::sleep_for(1200ms);
  f.backend().reset_stats();
  REQUIRE(get(f.port(), "/").status == 200);
  CHECK(f.backend().stats().connections == 1);
}

TEST_CASE("a pooled connection the backend closed is not used again", "[upstream]") {
  ProxyFixture f(simple_config());
  f.backend().reset_stats();
  REQUIRE(get(f.port(), "/").status == 200);
  HttpResponse closed = get(f.port(), "/close");
  REQUIRE(closed.status == 200);
  CHECK(closed.body == "closed\n");
  // Give the FIN time to arrive, then make sure nothing trips over it.
  std::this_thread::sleep_for(50ms);
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = get(f.port(), "/");
    INFO(i << ": " << r.error);
    CHECK(r.status == 200);
    CHECK(r.body.size() == 100);
  }
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 7);
  CHECK(s.connections == 2);

  SECTION("also right after the close, with no pause") {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), build_request("GET", "/close") + build_request("GET", "/bytes?n=5")));
    HttpResponse a = read_response(fd.get(), 5s);
    HttpResponse b = read_response(fd.get(), 5s);
    CHECK(a.status == 200);
    CHECK(b.status == 200);
    CHECK(b.body == "abcde");
  }
}

TEST_CASE("round_robin spreads requests over the servers", "[upstream]") {
  SECTION("equal weights") {
    ProxyFixture f(simple_config("", "    balance: round_robin\n", {"{B0}", "{B1}"}),
                   Setup{.backends = 2, .backend_args = {}});
    for (int i = 0; i < 10; ++i) REQUIRE(get(f.port(), "/").status == 200);
    CHECK(f.backend(0).stats().requests == 5);
    CHECK(f.backend(1).stats().requests == 5);
  }
  SECTION("weights 3:1") {
    ProxyFixture f(R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: all
    upstream: app
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{B0}", weight: 3 }
      - { address: "127.0.0.1:{B1}", weight: 1 }
    balance: round_robin
logging: { level: info, access_log: { path: "off" } }
)",
                   Setup{.backends = 2, .backend_args = {}});
    for (int i = 0; i < 12; ++i) REQUIRE(get(f.port(), "/").status == 200);
    CHECK(f.backend(0).stats().requests == 9);
    CHECK(f.backend(1).stats().requests == 3);
  }
}

TEST_CASE("least_connections prefers the idle server", "[upstream]") {
  ProxyFixture f(simple_config("", "    balance: least_connections\n", {"{B0}", "{B1}"}),
                 Setup{.backends = 2, .backend_args = {}});

  SECTION("concurrent slow requests land on both servers") {
    std::vector<int> status(6, 0);
    run_parallel(6, [&](int i) { status[static_cast<size_t>(i)] = get(f.port(), "/sleep?ms=300").status; });
    for (int s : status) CHECK(s == 200);
    int64_t a = f.backend(0).stats().requests;
    int64_t b = f.backend(1).stats().requests;
    CHECK(a + b == 6);
    CHECK(a >= 1);
    CHECK(b >= 1);
  }
  SECTION("while one server is busy, quick requests go to the other") {
    HttpResponse slow;
    std::thread t([&] { slow = request(f.port(), "GET", "/sleep?ms=1500", {}, {}, 10s); });
    // Wait until the slow request is in flight at one of them.
    auto deadline = std::chrono::steady_clock::now() + 3s;
    while (f.backend(0).stats().active + f.backend(1).stats().active < 1 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    std::vector<int> status;
    for (int i = 0; i < 4; ++i) status.push_back(get(f.port(), "/").status);
    t.join();
    CHECK(slow.status == 200);
    for (int s : status) CHECK(s == 200);
    int64_t a = f.backend(0).stats().requests;
    int64_t b = f.backend(1).stats().requests;
    INFO("backend0 " << a << ", backend1 " << b);
    CHECK(std::min(a, b) == 1);  // the slow one alone
    CHECK(std::max(a, b) == 4);  // every quick one
  }
}

TEST_CASE("response framings reach the client intact", "[upstream]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());

  SECTION("Content-Length") {
    REQUIRE(send_all(fd.get(), build_request("GET", "/")));
    HttpResponse r = read_response(fd.get(), 5s);
    CHECK(r.status == 200);
    CHECK(r.header("Content-Length") == "100");
    CHECK(r.body.size() == 100);
    CHECK(r.keep_alive);
  }
  SECTION("chunked") {
    REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=300000&chunked=1")));
    HttpResponse r = read_response(fd.get(), 5s);
    CHECK(r.status == 200);
    CHECK(r.complete);
    CHECK(r.body == pattern_body(300000));
    CHECK(r.header("X-Body-Hash") == hex64(body_hash(r.body)));
    CHECK(r.keep_alive);
  }
  SECTION("HEAD: no body, Content-Length kept, connection still usable") {
    // Note: sluice-backend writes a body even for HEAD; sluice must not pass
    // it on nor mistake it for the next response.
    REQUIRE(send_all(fd.get(), build_request("HEAD", "/")));
    HttpResponse r = read_response(fd.get(), 5s, {.head_request = true, .return_interim = false});
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.header("Content-Length") == "100");
    CHECK(r.body.empty());
    REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=4")));
    HttpResponse next = read_response(fd.get(), 5s);
    INFO(next.error);
    CHECK(next.status == 200);
    CHECK(next.body == "abcd");
  }
  SECTION("204 and 304 have no body; the connection goes on") {
    for (int code : {204, 304}) {
      REQUIRE(send_all(fd.get(), build_request("GET", "/status?code=" + std::to_string(code))));
      HttpResponse r = read_response(fd.get(), 5s);
      INFO(code << ": " << r.error);
      CHECK(r.status == code);
      CHECK(r.body.empty());
      CHECK_FALSE(r.header("Transfer-Encoding").has_value());
    }
    REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=3")));
    HttpResponse r = read_response(fd.get(), 5s);
    CHECK(r.status == 200);
    CHECK(r.body == "abc");
  }
}

TEST_CASE("a close-delimited upstream response is delivered whole", "[upstream]") {
  // sluice-backend never sends close-delimited bodies: a scripted upstream does.
  const std::string body = pattern_body(50000);
  ScriptedUpstream up(canned("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body, true));
  ProxyFixture f(scripted_config(), Setup{.backends = 0, .backend_args = {}}, {up.port()});
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(), build_request("GET", "/")));
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.complete);
  CHECK(r.body == body);
  if (r.keep_alive) {
    // Re-framed (chunked): the client connection may carry another request.
    REQUIRE(send_all(fd.get(), build_request("GET", "/")));
    HttpResponse again = read_response(fd.get(), 5s);
    CHECK(again.status == 200);
    CHECK(again.body == body);
  }
}

TEST_CASE("1xx interim responses from the upstream are not forwarded", "[upstream]") {
  ScriptedUpstream up(canned(
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
      false));
  ProxyFixture f(scripted_config(), Setup{.backends = 0, .backend_args = {}}, {up.port()});
  RawResult raw = raw_exchange(f.port(), build_request("GET", "/", {{"Connection", "close"}}), 5s);
  INFO(raw.bytes);
  CHECK(raw.status == 200);
  CHECK(count_of(raw.bytes, "HTTP/1.1 1") == 0);
  CHECK(raw.bytes.find("Link:") == std::string::npos);
  CHECK(raw.bytes.size() >= 5);
  CHECK(raw.bytes.substr(raw.bytes.size() - 5) == "final");
}

TEST_CASE("WebSocket upgrade gets 101 and a byte tunnel both ways", "[upstream]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(),
                   "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  REQUIRE(r.status == 101);
  CHECK(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  auto upgrade = r.header("Upgrade");
  REQUIRE(upgrade.has_value());
  CHECK(Catch::toLower(*upgrade) == "websocket");

  // The backend echoes raw bytes after its 101.
  for (std::string msg : {std::string("\x81\x05hello", 7), std::string(100000, 'w')}) {
    REQUIRE(send_all(fd.get(), msg));
    std::string got;
    while (got.size() < msg.size()) {
      std::string part = recv_some(fd.get(), 65536, 5s);
      if (part.empty()) break;
      got += part;
    }
    CHECK(got.size() == msg.size());
    CHECK((got == msg));
  }
}
