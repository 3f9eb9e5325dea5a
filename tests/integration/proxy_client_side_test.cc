// Client side of the data path: keep-alive, pipelining, HTTP/1.0,
// Expect: 100-continue, request bodies, 20 MB bodies both ways and
// backpressure towards a slow reader.
#include <sys/socket.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <charconv>
#include <thread>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/hash.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

constexpr size_t k20MiB = 20 * 1024 * 1024;

// Big bodies must pass the listener limit (default 10MiB).
std::string big_config() { return simple_config("    limits: { max_body_bytes: 64MiB }\n"); }

// A body that is not the /bytes pattern, so an echo cannot be faked.
std::string noise(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x & 0xff);
  }
  return s;
}

}  // namespace

TEST_CASE("keep-alive: several requests on one client connection", "[client_side]") {
  ProxyFixture f(simple_config());
  f.backend().reset_stats();
  UniqueFd fd = connect_or_fail(f.port());
  for (int i = 0; i < 5; ++i) {
    std::string target = "/headers?i=" + std::to_string(i);
    REQUIRE(send_all(fd.get(), build_request("GET", target)));
    HttpResponse r = read_response(fd.get(), 5s);
    INFO("request " << i << ": " << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    CHECK(r.keep_alive);
    CHECK_FALSE(r.peer_closed);
    CHECK(head_lines(r.body).at(0) == "GET " + target + " HTTP/1.1");
  }
  CHECK(f.backend().stats().requests == 5);
}

TEST_CASE("pipelined requests are answered in order", "[client_side]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  // The first one is the slowest: answers must still come in request order.
  std::string all = build_request("GET", "/sleep?ms=200") +
                    build_request("POST", "/echo", {}, "second body") +
                    build_request("GET", "/headers?third=1") + build_request("GET", "/bytes?n=7");
  REQUIRE(send_all(fd.get(), all));
  HttpResponse r1 = read_response(fd.get(), 5s);
  HttpResponse r2 = read_response(fd.get(), 5s);
  HttpResponse r3 = read_response(fd.get(), 5s);
  HttpResponse r4 = read_response(fd.get(), 5s);
  INFO(r1.error << " / " << r2.error << " / " << r3.error << " / " << r4.error);
  CHECK(r1.status == 200);
  CHECK(r1.body == "slept\n");
  CHECK(r2.status == 200);
  CHECK(r2.body == "second body");
  CHECK(r3.status == 200);
  CHECK(head_lines(r3.body).at(0) == "GET /headers?third=1 HTTP/1.1");
  CHECK(r4.status == 200);
  CHECK(r4.body == "abcdefg");
  CHECK(r4.keep_alive);
}

TEST_CASE("HTTP/1.0 clients", "[client_side]") {
  ProxyFixture f(simple_config());

  SECTION("without keep-alive the response ends the connection") {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), "GET /headers HTTP/1.0\r\nHost: old.example\r\n\r\n"));
    HttpResponse r = read_response(fd.get(), 5s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    CHECK(head_lines(r.body).at(0).rfind("GET /headers HTTP/1.", 0) == 0);
    CHECK((r.peer_closed || wait_peer_closed(fd.get(), 3s)));
  }

  SECTION("with Connection: keep-alive the connection stays open") {
    UniqueFd fd = connect_or_fail(f.port());
    for (int i = 0; i < 3; ++i) {
      REQUIRE(send_all(fd.get(), "GET / HTTP/1.0\r\nHost: old.example\r\nConnection: keep-alive\r\n\r\n"));
      HttpResponse r = read_response(fd.get(), 5s);
      INFO("request " << i << ": " << r.error);
      REQUIRE(r.status == 200);
      CHECK(r.body.size() == 100);
      CHECK(r.header("Content-Length") == "100");
      auto conn = r.header("Connection");
      REQUIRE(conn.has_value());
      CHECK(Catch::toLower(*conn) == "keep-alive");
      CHECK_FALSE(r.peer_closed);
    }
  }

  SECTION("a chunked upstream response reaches an HTTP/1.0 client unchunked") {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), "GET /bytes?n=100000&chunked=1 HTTP/1.0\r\nHost: old.example\r\n\r\n"));
    bool closed = false;
    std::string raw = read_until_close(fd.get(), 5s, &closed);
    CHECK(closed);
    CHECK(status_of(raw) == 200);
    size_t end = raw.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    std::string head = raw.substr(0, end + 4);
    INFO(head);
    CHECK_FALSE(head_has(head, "Transfer-Encoding"));
    CHECK(raw.substr(end + 4) == pattern_body(100000));
  }
}

TEST_CASE("Expect: 100-continue gets 100 before the body is sent", "[client_side]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(),
                   "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"));
  HttpResponse interim = read_response(fd.get(), 5s, {.head_request = false, .return_interim = true});
  INFO(interim.error);
  REQUIRE(interim.status == 100);
  REQUIRE(send_all(fd.get(), "hello world"));
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "hello world");
  CHECK(r.interim.empty());
}

TEST_CASE("Expect: 100-continue with the body sent at once", "[client_side]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(),
                   "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
                   "hello"));
  HttpResponse r = read_response(fd.get(), 5s);  // a 100 before it is allowed
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "hello");
  // Nothing stray (such as a late 100) follows on the connection.
  REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=2")));
  HttpResponse next = read_response(fd.get(), 5s, {.head_request = false, .return_interim = true});
  CHECK(next.status == 200);
  CHECK(next.body == "ab");
}

TEST_CASE("Expect: 100-continue on a refused request gets the final status, not 100",
          "[client_side]") {
  ProxyFixture f(simple_config("    limits: { max_body_bytes: 1KiB }\n"));
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(),
                   "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
  HttpResponse r = read_response(fd.get(), 5s, {.head_request = false, .return_interim = true});
  INFO(r.error);
  CHECK(r.status == 413);
}

TEST_CASE("a client that half-closes after its request still gets the response",
          "[client_side]") {
  ProxyFixture f(simple_config());
  UniqueFd fd = connect_or_fail(f.port());
  REQUIRE(send_all(fd.get(), build_request("GET", "/sleep?ms=100")));
  ::shutdown(fd.get(), SHUT_WR);
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slept\n");
  CHECK((r.peer_closed || wait_peer_closed(fd.get(), 3s)));
}

TEST_CASE("request bodies with Content-Length and chunked", "[client_side]") {
  ProxyFixture f(simple_config());

  SECTION("Content-Length") {
    HttpResponse r = request(f.port(), "POST", "/echo", {}, "content-length body");
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "content-length body");
    CHECK(r.header("X-Body-Length") == "19");
  }
  SECTION("chunked") {
    HttpResponse r =
        request(f.port(), "POST", "/echo", {{"Transfer-Encoding", "chunked"}},
                "5\r\nhello\r\n1\r\n \r\n5;ext=1\r\nworld\r\n0\r\n\r\n");
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "hello world");
    CHECK(r.header("X-Body-Length") == "11");
  }
  SECTION("chunked, on a kept-alive connection, then another request") {
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), build_request("POST", "/echo", {{"Transfer-Encoding", "chunked"}},
                                             chunked("abcdefghij", 3))));
    HttpResponse r = read_response(fd.get(), 5s);
    CHECK(r.status == 200);
    CHECK(r.body == "abcdefghij");
    REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=3")));
    HttpResponse r2 = read_response(fd.get(), 5s);
    CHECK(r2.status == 200);
    CHECK(r2.body == "abc");
  }
}

TEST_CASE("20 MB bodies both ways keep their hash", "[client_side]") {
  ProxyFixture f(big_config());
  const std::string body = noise(k20MiB, 7);
  const std::string expected = hex64(body_hash(body));

  SECTION("upload with Content-Length to /hash") {
    HttpResponse r = request(f.port(), "POST", "/hash", {}, body, 60s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Body-Length") == std::to_string(k20MiB));
    CHECK(r.header("X-Body-Hash") == expected);
  }
  SECTION("upload chunked to /hash") {
    HttpResponse r = request(f.port(), "POST", "/hash", {{"Transfer-Encoding", "chunked"}},
                             chunked(body, 100000), 60s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Body-Length") == std::to_string(k20MiB));
    CHECK(r.header("X-Body-Hash") == expected);
  }
  SECTION("upload to /echo and back") {
    HttpResponse r = request(f.port(), "POST", "/echo", {}, body, 60s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body.size() == k20MiB);
    CHECK(hex64(body_hash(r.body)) == expected);
  }
  SECTION("download with Content-Length") {
    HttpResponse r = request(f.port(), "GET", "/bytes?n=20971520", {}, {}, 60s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    CHECK(r.header("Content-Length") == "20971520");
    CHECK(r.body.size() == k20MiB);
    REQUIRE(r.header("X-Body-Hash").has_value());
    CHECK(hex64(body_hash(r.body)) == *r.header("X-Body-Hash"));
    CHECK(r.body == pattern_body(k20MiB));
  }
  SECTION("download chunked") {
    HttpResponse r = request(f.port(), "GET", "/bytes?n=20971520&chunked=1", {}, {}, 60s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    CHECK(r.body.size() == k20MiB);
    REQUIRE(r.header("X-Body-Hash").has_value());
    CHECK(hex64(body_hash(r.body)) == *r.header("X-Body-Hash"));
  }
}

TEST_CASE("a slow reader gets a 20 MB download whole while sluice's memory stays bounded",
          "[client_side]") {
  ProxyFixture f(big_config());
  // Warm up: pools, buffers and the first connection exist before the baseline.
  REQUIRE(get(f.port(), "/bytes?n=1000000").status == 200);
  const int64_t rss_before = f.sluice().rss_kib();
  REQUIRE(rss_before > 0);

  UniqueFd fd = connect_or_fail(f.port());
  int small = 64 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  REQUIRE(send_all(fd.get(), build_request("GET", "/bytes?n=20971520")));

  std::string head;
  BodyHasher hasher;
  uint64_t length = 0;
  bool have_head = false;
  int64_t rss_max = rss_before;
  int reads = 0;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!have_head || hasher.length() < length) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    bool eof = false;
    std::string part = recv_some(fd.get(), 64 * 1024, 10s, &eof);
    INFO("received " << hasher.length() << " body bytes; eof " << eof);
    REQUIRE_FALSE(part.empty());
    if (!have_head) {
      head += part;
      size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::string rest = head.substr(end + 4);
      head.resize(end + 4);
      have_head = true;
      REQUIRE(status_of(head) == 200);
      auto cl = head_values(head, "Content-Length");
      REQUIRE(cl.size() == 1);
      length = std::stoull(cl[0]);
      hasher.update(rest);
    } else {
      hasher.update(part);
    }
    if (++reads % 8 == 0) rss_max = std::max(rss_max, f.sluice().rss_kib());
    std::this_thread::sleep_for(8ms);
  }
  CHECK(length == k20MiB);
  CHECK(hasher.length() == k20MiB);
  auto hash = head_values(head, "X-Body-Hash");
  REQUIRE(hash.size() == 1);
  CHECK(hex64(hasher.digest()) == hash[0]);
  INFO("VmRSS before " << rss_before << " KiB, max during " << rss_max << " KiB");
  CHECK(rss_max - rss_before < 8 * 1024);
}
