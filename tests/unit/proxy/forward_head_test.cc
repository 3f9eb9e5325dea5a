// The head sent upstream, byte for byte.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/routing.h"
#include "tests/unit/proxy/test_heads.h"

namespace sluice::proxy {
namespace {

using test::forward_route;
using test::make_config;
using test::make_head;

std::string forwarded(const config::Route& route, RequestHead head,
                      config::EncodedSlashes slashes = config::EncodedSlashes::Reject) {
  auto cfg = make_config({route});
  RouteResult r = test::route(cfg, std::move(head), slashes);
  REQUIRE(r.outcome == RouteOutcome::Forward);
  return r.upstream_head;
}

std::string forwarded(RequestHead head,
                      config::EncodedSlashes slashes = config::EncodedSlashes::Reject) {
  return forwarded(forward_route("all"), std::move(head), slashes);
}

TEST_CASE("forward: a plain GET", "[forward]") {
  auto head = make_head("GET", "/index.html", {{"Host", "example.com"}, {"User-Agent", "curl/8"},
                                               {"Accept", "*/*"}});
  CHECK(forwarded(std::move(head)) ==
        "GET /index.html HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "User-Agent: curl/8\r\n"
        "Accept: */*\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "\r\n");
}

TEST_CASE("forward: the target goes byte for byte, query and escapes included", "[forward]") {
  // (encoded_slashes: keep lets "%2f" through; decode would route it as "/".)
  auto head = make_head("GET", "/a/./b/%7euser/%2fx?q=%41+b&r=/../", {{"Host", "example.com"}});
  CHECK(forwarded(std::move(head), config::EncodedSlashes::Keep) ==
        "GET /a/./b/%7euser/%2fx?q=%41+b&r=/../ HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "\r\n");
}

TEST_CASE("forward: an HTTP/1.0 request goes upstream as HTTP/1.1 with a Host", "[forward]") {
  auto head = make_head("GET", "/x", {{"Accept", "*/*"}});
  head.http_minor = 0;
  CHECK(forwarded(std::move(head)) ==
        "GET /x HTTP/1.1\r\n"
        "Host: \r\n"
        "Accept: */*\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "\r\n");
}

TEST_CASE("forward: absolute-form goes upstream in origin-form, Host from the target", "[forward]") {
  auto head = make_head("GET", "http://API.example.com:8080/a?b=c", {{"Host", "ignored.example.com"}});
  CHECK(forwarded(std::move(head)) ==
        "GET /a?b=c HTTP/1.1\r\n"
        "Host: API.example.com:8080\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: API.example.com:8080\r\n"
        "\r\n");
  auto no_path = make_head("GET", "http://h?x", {{"Host", "h"}});
  CHECK(forwarded(std::move(no_path)).starts_with("GET /?x HTTP/1.1\r\nHost: h\r\n"));
}

TEST_CASE("forward: OPTIONS * stays *", "[forward]") {
  CHECK(forwarded(make_head("OPTIONS", "*")).starts_with("OPTIONS * HTTP/1.1\r\n"));
}

TEST_CASE("forward: rewrite strips and adds prefixes, query kept", "[forward]") {
  auto route = forward_route("api");
  route.rewrite.strip_prefix = "/api";
  route.rewrite.add_prefix = "/v2";
  auto line = [&](std::string_view target) {
    std::string head = forwarded(route, make_head("GET", target));
    return head.substr(0, head.find("\r\n"));
  };
  CHECK(line("/api/users?id=%41&x") == "GET /v2/users?id=%41&x HTTP/1.1");
  CHECK(line("/api") == "GET /v2/ HTTP/1.1");
  CHECK(line("/api/") == "GET /v2/ HTTP/1.1");
  CHECK(line("/other/x") == "GET /v2/other/x HTTP/1.1");
  // The rewritten path is the normalised one.
  CHECK(line("/api/a/../%62") == "GET /v2/b HTTP/1.1");
}

TEST_CASE("forward: rewrite strip only, and add only", "[forward]") {
  auto strip = forward_route("strip");
  strip.rewrite.strip_prefix = "/api/";
  CHECK(forwarded(strip, make_head("GET", "/api/x?y")).starts_with("GET /x?y HTTP/1.1\r\n"));
  CHECK(forwarded(strip, make_head("GET", "/api/")).starts_with("GET / HTTP/1.1\r\n"));

  auto add = forward_route("add");
  add.rewrite.add_prefix = "/app/";
  CHECK(forwarded(add, make_head("GET", "/x?y")).starts_with("GET /app/x?y HTTP/1.1\r\n"));
  CHECK(forwarded(add, make_head("GET", "/")).starts_with("GET /app/ HTTP/1.1\r\n"));
}

TEST_CASE("forward: hop-by-hop headers and names listed in Connection are dropped", "[forward]") {
  auto head = make_head("GET", "/", {{"Host", "example.com"},
                                     {"Connection", "keep-alive, X-Secret"},
                                     {"Keep-Alive", "timeout=5"},
                                     {"Proxy-Connection", "keep-alive"},
                                     {"TE", "trailers"},
                                     {"Trailer", "X-Checksum"},
                                     {"Upgrade", "h2c"},
                                     {"X-Secret", "drop me"},
                                     {"x-secret", "me too"},
                                     {"connection", "X-Other"},
                                     {"X-Other", "gone"},
                                     {"X-Kept", "kept"}});
  CHECK(forwarded(std::move(head)) ==
        "GET / HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Kept: kept\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "\r\n");
}

TEST_CASE("forward: Connection cannot nominate Host away", "[forward]") {
  auto head = make_head("GET", "/", {{"Host", "example.com"}, {"Connection", "Host, X-Forwarded-For"},
                                     {"X-Forwarded-For", "10.0.0.1"}});
  CHECK(forwarded(std::move(head)) ==
        "GET / HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "\r\n");
}

TEST_CASE("forward: repeated headers keep their order", "[forward]") {
  auto head = make_head("GET", "/", {{"Host", "example.com"}, {"Cookie", "a=1"}, {"Accept", "text/html"},
                                     {"cookie", "b=2"}, {"Cookie", "c=3"}});
  CHECK(forwarded(std::move(head)) ==
        "GET / HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Cookie: a=1\r\n"
        "Accept: text/html\r\n"
        "cookie: b=2\r\n"
        "Cookie: c=3\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "\r\n");
}

TEST_CASE("forward: X-Forwarded-For is appended to the existing values", "[forward]") {
  auto head = make_head("GET", "/", {{"Host", "example.com"}, {"X-Forwarded-For", "203.0.113.1, 10.0.0.1"},
                                     {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "spoofed"},
                                     {"x-forwarded-for", " 10.0.0.2 "}});
  head.client_ip = "::1";
  CHECK(forwarded(std::move(head)) ==
        "GET / HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Forwarded-For: 203.0.113.1, 10.0.0.1, 10.0.0.2, ::1\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "\r\n");
}

TEST_CASE("forward: X-Forwarded-Proto https and X-Forwarded-Host with a port", "[forward]") {
  auto head = make_head("GET", "/", {{"Host", "Example.com:8443"}});
  head.tls = true;
  CHECK(forwarded(std::move(head)) ==
        "GET / HTTP/1.1\r\n"
        "Host: Example.com:8443\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: Example.com:8443\r\n"
        "\r\n");
}

TEST_CASE("forward: request_headers set replaces, remove drops", "[forward]") {
  auto route = forward_route("edited");
  route.request_headers.set = {{"X-Env", "prod"}, {"Host", "backend.internal"}};
  route.request_headers.remove = {"cookie", "X-Forwarded-Host"};
  auto head = make_head("GET", "/", {{"Host", "example.com"}, {"X-Env", "dev"}, {"Cookie", "a=1"},
                                     {"Accept", "*/*"}, {"x-env", "test"}, {"COOKIE", "b=2"}});
  CHECK(forwarded(route, std::move(head)) ==
        "GET / HTTP/1.1\r\n"
        "Accept: */*\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Env: prod\r\n"
        "Host: backend.internal\r\n"
        "\r\n");
}

TEST_CASE("forward: request_headers cannot touch framing or hop-by-hop headers", "[forward]") {
  auto route = forward_route("edited");
  route.request_headers.set = {{"Content-Length", "999"}, {"Connection", "close"}, {"X-Forwarded-Proto", "https"}};
  route.request_headers.remove = {"Host", "Transfer-Encoding"};
  auto head = make_head("POST", "/", {{"Host", "example.com"}, {"Content-Length", "3"}});
  head.has_body = true;
  head.content_length = 3;
  CHECK(forwarded(route, std::move(head)) ==
        "POST / HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "X-Forwarded-Proto: https\r\n"
        "Content-Length: 3\r\n"
        "\r\n");
}

TEST_CASE("forward: chunked framing is re-emitted", "[forward]") {
  auto head = make_head("POST", "/upload", {{"Host", "example.com"}, {"Transfer-Encoding", "chunked"},
                                            {"Content-Type", "text/plain"}});
  head.has_body = true;
  head.chunked = true;
  CHECK(forwarded(std::move(head)) ==
        "POST /upload HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Content-Type: text/plain\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n");
}

TEST_CASE("forward: Content-Length framing is re-emitted", "[forward]") {
  auto head = make_head("PUT", "/f", {{"Content-Length", "1234567"}, {"Host", "example.com"}});
  head.has_body = true;
  head.content_length = 1234567;
  CHECK(forwarded(std::move(head)) ==
        "PUT /f HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "Content-Length: 1234567\r\n"
        "\r\n");
}

TEST_CASE("forward: a client's Content-Length: 0 is kept, no body means no framing", "[forward]") {
  auto zero = make_head("POST", "/", {{"Host", "h"}, {"Content-Length", "0"}});
  CHECK(forwarded(std::move(zero)).ends_with("X-Forwarded-Host: h\r\nContent-Length: 0\r\n\r\n"));
  auto none = make_head("POST", "/", {{"Host", "h"}});
  CHECK(forwarded(std::move(none)).ends_with("X-Forwarded-Host: h\r\n\r\n"));
}

TEST_CASE("forward: a WebSocket upgrade keeps Upgrade and says Connection: Upgrade", "[forward]") {
  auto head = make_head("GET", "/ws", {{"Host", "example.com"}, {"Connection", "keep-alive, Upgrade"},
                                       {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                       {"Sec-WebSocket-Version", "13"}});
  head.upgrade = true;
  CHECK(forwarded(std::move(head)) ==
        "GET /ws HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Upgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "Connection: Upgrade\r\n"
        "\r\n");
}

TEST_CASE("forward: Expect is dropped", "[forward]") {
  auto head = make_head("POST", "/", {{"Host", "example.com"}, {"Expect", "100-continue"},
                                      {"Content-Length", "5"}});
  head.has_body = true;
  head.content_length = 5;
  CHECK(forwarded(std::move(head)) ==
        "POST / HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: example.com\r\n"
        "Content-Length: 5\r\n"
        "\r\n");
}

}  // namespace
}  // namespace sluice::proxy
