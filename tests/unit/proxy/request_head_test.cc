#include "proxy/request_head.h"

#include <catch2/catch.hpp>

#include "tests/unit/proxy/test_heads.h"

namespace sluice::proxy {
namespace {

TEST_CASE("RequestHead::header finds the first value, name case-insensitive", "[request_head]") {
  auto head = test::make_head("GET", "/", {{"Host", "h"}, {"X-Dup", "one"}, {"x-dup", "two"}});
  CHECK(head.method_view() == "GET");
  CHECK(head.target_view() == "/");
  CHECK(head.header("host") == "h");
  CHECK(head.header("X-DUP") == "one");
  CHECK(head.header("Missing").empty());
}

TEST_CASE("RequestHead::clear forgets everything and keeps capacity", "[request_head]") {
  auto head = test::make_head("POST", "/upload", {{"Host", "h"}, {"Content-Length", "3"}});
  head.http_minor = 0;
  head.keep_alive = false;
  head.upgrade = true;
  head.has_body = true;
  head.chunked = true;
  head.content_length = 3;
  head.tls = true;
  const auto buf_capacity = head.buf.capacity();
  const auto headers_capacity = head.headers.capacity();

  head.clear();

  CHECK(head.buf.empty());
  CHECK(head.headers.empty());
  CHECK(head.method_view().empty());
  CHECK(head.target_view().empty());
  CHECK(head.http_major == 1);
  CHECK(head.http_minor == 1);
  CHECK(head.keep_alive);
  CHECK_FALSE(head.upgrade);
  CHECK_FALSE(head.has_body);
  CHECK_FALSE(head.chunked);
  CHECK(head.content_length == 0);
  CHECK(head.client_ip.empty());
  CHECK_FALSE(head.tls);
  CHECK(head.buf.capacity() == buf_capacity);
  CHECK(head.headers.capacity() == headers_capacity);
}

}  // namespace
}  // namespace sluice::proxy
