// HTTP semantics of forwarding: hop-by-hop headers, X-Forwarded-*, Host,
// the request target byte for byte, header order and repeated headers.
#include <algorithm>
#include <catch2/catch.hpp>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

// What the backend received, from its /headers echo.
std::string backend_head(uint16_t port, std::string_view raw_request) {
  UniqueFd fd = connect_or_fail(port);
  REQUIRE(send_all(fd.get(), raw_request));
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  REQUIRE(r.status == 200);
  return r.body;
}

using Values = std::vector<std::string>;

}  // namespace

TEST_CASE("hop-by-hop headers do not reach the backend", "[semantics]") {
  ProxyFixture f(simple_config());
  std::string head = backend_head(f.port(),
                                  "GET /headers HTTP/1.1\r\n"
                                  "Host: example.test\r\n"
                                  "Connection: X-Foo, x-bar\r\n"
                                  "X-Foo: 1\r\n"
                                  "X-Bar: 2\r\n"
                                  "Keep-Alive: 1\r\n"
                                  "TE: trailers\r\n"
                                  "Proxy-Connection: x\r\n"
                                  "Trailer: X-T\r\n"
                                  "X-End-To-End: kept\r\n"
                                  "\r\n");
  INFO(head);
  for (const char* name :
       {"X-Foo", "X-Bar", "Keep-Alive", "TE", "Proxy-Connection", "Trailer", "Upgrade"}) {
    INFO(name);
    CHECK_FALSE(head_has(head, name));
  }
  // sluice may add its own Connection header, but never with the client's tokens.
  for (const auto& v : head_values(head, "Connection")) {
    std::string lower = Catch::toLower(v);
    CHECK(lower.find("x-foo") == std::string::npos);
    CHECK(lower.find("x-bar") == std::string::npos);
  }
  CHECK(head_values(head, "X-End-To-End") == Values{"kept"});
}

TEST_CASE("X-Forwarded-* headers and Host", "[semantics]") {
  ProxyFixture f(simple_config());

  SECTION("X-Forwarded-For is appended to the client's") {
    std::string head = backend_head(
        f.port(), "GET /headers HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n");
    INFO(head);
    CHECK(head_values(head, "X-Forwarded-For") == Values{"10.0.0.1, 10.0.0.2, 127.0.0.1"});
  }
  SECTION("X-Forwarded-For is created when absent") {
    std::string head = backend_head(f.port(), "GET /headers HTTP/1.1\r\nHost: h.test\r\n\r\n");
    INFO(head);
    CHECK(head_values(head, "X-Forwarded-For") == Values{"127.0.0.1"});
  }
  SECTION("X-Forwarded-Proto is http, whatever the client claims") {
    std::string head = backend_head(
        f.port(), "GET /headers HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-Proto: https\r\n\r\n");
    INFO(head);
    CHECK(head_values(head, "X-Forwarded-Proto") == Values{"http"});
  }
  SECTION("X-Forwarded-Host and Host carry the client's Host") {
    std::string head =
        backend_head(f.port(), "GET /headers HTTP/1.1\r\nHost: Site.Example:8080\r\n\r\n");
    INFO(head);
    CHECK(head_values(head, "Host") == Values{"Site.Example:8080"});
    CHECK(head_values(head, "X-Forwarded-Host") == Values{"Site.Example:8080"});
  }
}

TEST_CASE("the request target is forwarded byte for byte", "[semantics]") {
  ProxyFixture f(simple_config());
  for (const char* target :
       {"/headers?a=%2F&b=c%20d", "/headers?x=%41%2f+y&&z=", "/headers?q=a/../b/./c",
        "/headers?"}) {
    std::string head =
        backend_head(f.port(), std::string("GET ") + target + " HTTP/1.1\r\nHost: h\r\n\r\n");
    INFO(head);
    CHECK(head_lines(head).at(0) == std::string("GET ") + target + " HTTP/1.1");
  }
}

TEST_CASE("an absolute-form target is forwarded in origin-form with its host", "[semantics]") {
  ProxyFixture f(simple_config());
  std::string head = backend_head(
      f.port(), "GET http://abs.example:8080/headers?x=%2F HTTP/1.1\r\nHost: abs.example:8080\r\n\r\n");
  INFO(head);
  CHECK(head_lines(head).at(0) == "GET /headers?x=%2F HTTP/1.1");
  CHECK(head_values(head, "Host") == Values{"abs.example:8080"});
}

TEST_CASE("repeated request headers keep their order", "[semantics]") {
  ProxyFixture f(simple_config());
  std::string head = backend_head(f.port(),
                                  "GET /headers HTTP/1.1\r\nHost: h\r\n"
                                  "X-Multi: a\r\n"
                                  "Accept: text/plain\r\n"
                                  "X-Multi: b\r\n"
                                  "x-multi: c\r\n"
                                  "Cookie: one=1\r\n"
                                  "Cookie: two=2\r\n"
                                  "\r\n");
  INFO(head);
  CHECK(head_values(head, "X-Multi") == Values{"a", "b", "c"});
  CHECK(head_values(head, "Cookie") == Values{"one=1", "two=2"});
  CHECK(head_values(head, "Accept") == Values{"text/plain"});
  // Relative order of the client's own headers is kept too.
  auto lines = head_lines(head);
  auto pos = [&](const std::string& l) {
    return std::find(lines.begin(), lines.end(), l) - lines.begin();
  };
  CHECK(pos("X-Multi: a") < pos("Accept: text/plain"));
  CHECK(pos("Accept: text/plain") < pos("X-Multi: b"));
  CHECK(pos("X-Multi: b") < pos("x-multi: c"));
}

TEST_CASE("several Set-Cookie response headers are kept in order", "[semantics]") {
  // sluice-backend cannot emit two Set-Cookie headers: a scripted upstream does.
  ScriptedUpstream up([](ScriptedUpstream& self, int fd) {
    while (!self.read_request(fd, 5s).empty()) {
      if (!send_all(fd,
                    "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nX-Other: o\r\n"
                    "Set-Cookie: b=2, c=3\r\nSet-Cookie: d=4\r\nContent-Length: 2\r\n\r\nok",
                    5s)) {
        return;
      }
    }
  });
  ProxyFixture f(simple_config("", "", {"{S0}"}), Setup{.backends = 0, .backend_args = {}},
                 {up.port()});
  HttpResponse r = get(f.port(), "/");
  INFO(r.error);
  REQUIRE(r.status == 200);
  Values cookies;
  for (const auto& [name, value] : r.headers) {
    if (Catch::toLower(name) == "set-cookie") cookies.push_back(value);
  }
  CHECK(cookies == Values{"a=1; Path=/", "b=2, c=3", "d=4"});
  CHECK(r.header("X-Other") == "o");
  CHECK(r.body == "ok");
}
