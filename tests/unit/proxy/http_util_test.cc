#include "proxy/http_util.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tests/unit/proxy/test_heads.h"

namespace sluice::proxy {
namespace {

TEST_CASE("iequals compares ASCII case-insensitively", "[http_util]") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("", ""));
  CHECK_FALSE(iequals("Host", "Hos"));
  CHECK_FALSE(iequals("a-b", "a_b"));
  CHECK(istarts_with("Keep-Alive", "keep"));
  CHECK(iends_with("A.Example.COM", ".example.com"));
  CHECK_FALSE(iends_with("com", ".example.com"));
}

TEST_CASE("is_token accepts tchars only", "[http_util]") {
  CHECK(is_token("X-Custom_1!#$%&'*+.^`|~"));
  CHECK_FALSE(is_token(""));
  CHECK_FALSE(is_token("a b"));
  CHECK_FALSE(is_token("a:b"));
  CHECK_FALSE(is_token("a\"b"));
  CHECK_FALSE(is_tchar('('));
}

TEST_CASE("is_hop_by_hop knows the RFC 9110 list plus Proxy-Connection", "[http_util]") {
  for (const char* name : {"Connection", "keep-alive", "Proxy-Connection", "TE", "trailer",
                           "Transfer-Encoding", "UPGRADE"})
    CHECK(is_hop_by_hop(name));
  for (const char* name : {"Host", "Content-Length", "Expect", "Trailers", "T", "Cookie"})
    CHECK_FALSE(is_hop_by_hop(name));
}

TEST_CASE("list tokens are split on commas and trimmed", "[http_util]") {
  std::vector<std::string> got;
  for_each_list_token(" keep-alive ,\tX-Foo,, ,Upgrade", [&](std::string_view t) { got.emplace_back(t); });
  CHECK(got == std::vector<std::string>{"keep-alive", "X-Foo", "Upgrade"});
  CHECK(list_has_token("close, X-Secret", "x-secret"));
  CHECK_FALSE(list_has_token("close, X-Secret-2", "x-secret"));
  CHECK_FALSE(list_has_token("", "close"));
}

TEST_CASE("connection_lists looks at every Connection header", "[http_util]") {
  auto head = test::make_head("GET", "/", {{"Host", "h"}, {"Connection", "keep-alive"},
                                           {"X-A", "1"}, {"connection", "X-A , X-B"}});
  CHECK(connection_lists(head, "x-a"));
  CHECK(connection_lists(head, "X-B"));
  CHECK(connection_lists(head, "Keep-Alive"));
  CHECK_FALSE(connection_lists(head, "Host"));
}

TEST_CASE("ConnectionTokens collects every Connection line, bounded", "[http_util]") {
  auto head = test::make_head("GET", "/", {{"Host", "h"}, {"Connection", "keep-alive, X-A"},
                                           {"connection", "x-a,X-B"}});
  ConnectionTokens tokens;
  REQUIRE(tokens.collect(head));
  CHECK(tokens.count == 3);  // duplicates collapsed
  CHECK(tokens.contains("X-B"));
  CHECK(tokens.contains("KEEP-ALIVE"));
  CHECK_FALSE(tokens.contains("Host"));

  std::string many;
  for (size_t i = 0; i <= ConnectionTokens::kMax; ++i) many += "X-" + std::to_string(i) + ",";
  auto too_many = test::make_head("GET", "/", {{"Host", "h"}, {"Connection", many}});
  CHECK_FALSE(tokens.collect(too_many));
}

TEST_CASE("is_websocket_upgrade needs the upgrade flag and a websocket token", "[http_util]") {
  auto head = test::make_head("GET", "/ws", {{"Host", "h"}, {"Upgrade", "WebSocket"}});
  CHECK_FALSE(is_websocket_upgrade(head));
  head.upgrade = true;
  CHECK(is_websocket_upgrade(head));
  auto h2c = test::make_head("GET", "/", {{"Host", "h"}, {"Upgrade", "h2c"}});
  h2c.upgrade = true;
  CHECK_FALSE(is_websocket_upgrade(h2c));
}

TEST_CASE("status_reason gives the standard phrases", "[http_util]") {
  CHECK(status_reason(200) == "OK");
  CHECK(status_reason(404) == "Not Found");
  CHECK(status_reason(413) == "Content Too Large");
  CHECK(status_reason(502) == "Bad Gateway");
  CHECK(status_reason(503) == "Service Unavailable");
  CHECK(status_reason(504) == "Gateway Timeout");
  CHECK(status_reason(299).empty());
}

TEST_CASE("is_idempotent follows RFC 9110 9.2.2", "[http_util]") {
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) CHECK(is_idempotent(m));
  for (const char* m : {"POST", "PATCH", "CONNECT", "get"}) CHECK_FALSE(is_idempotent(m));
}

TEST_CASE("host_without_port strips the port and validates", "[http_util]") {
  CHECK(host_without_port("example.com") == "example.com");
  CHECK(host_without_port("Example.com:8080") == "Example.com");
  CHECK(host_without_port("example.com.") == "example.com");
  CHECK(host_without_port("[::1]:8080") == "[::1]");
  CHECK(host_without_port("[::1]") == "[::1]");
  CHECK(host_without_port("10.0.0.1:80") == "10.0.0.1");
  CHECK(host_without_port("") == "");
  CHECK(host_without_port("h:") == "h");
  CHECK_FALSE(host_without_port("user@example.com"));
  CHECK_FALSE(host_without_port("example.com:80x"));
  CHECK_FALSE(host_without_port("a b"));
  CHECK_FALSE(host_without_port("[::1"));
  CHECK_FALSE(host_without_port("[]"));
  CHECK_FALSE(host_without_port("[::1]x"));
  CHECK_FALSE(host_without_port("exa%6dple.com"));
  CHECK_FALSE(host_without_port("example.com/x"));
}

}  // namespace
}  // namespace sluice::proxy
