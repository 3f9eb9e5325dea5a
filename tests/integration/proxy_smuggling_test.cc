// Request smuggling and conformance matrix (docs/security.md): for every
// ambiguous request shape, sluice either normalises it (the app gets one
// well-framed request) or refuses it with an exact status and closes. Each
// shape is followed on the same connection by a second request, the one a
// desynchronised parser would let through: the real backend behind sluice
// must never see it. A refused shape must not reach the backend at all.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

// What a desynchronised parser would take for a second request.
const std::string kSmuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kPost = "POST /echo HTTP/1.1\r\nHost: x\r\n";

// Printable form of raw bytes for failure messages.
std::string show(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 800)) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n\n";
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  if (bytes.size() > 800) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

// Sends `shape` followed by the smuggled request on one connection and
// checks: exactly `status`, one response and nothing after it, the
// connection closed, the backend saw no connection and no request, and
// sluice still serves a normal request.
void expect_refused(std::string_view shape, int status) {
  ProxyFixture f(simple_config());
  f.backend().reset_stats();
  std::string bytes = std::string(shape) + kSmuggled;
  RawResult r = raw_exchange(f.port(), bytes, 3s);
  INFO("sent:\n" << show(bytes));
  INFO("received:\n" << show(r.bytes));
  CHECK(r.status == status);
  CHECK(r.closed);
  CHECK(count_of(r.bytes, "HTTP/1.") == 1);
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 0);
  CHECK(s.max_active == 0);
  CHECK(s.connections == 0);
  HttpResponse ok = get(f.port(), "/");
  INFO("follow-up GET: " << ok.error);
  CHECK(ok.status == 200);
}

// Sends `shape` (which must ask for Connection: close) followed by the
// smuggled request and checks that sluice answered with the backend's
// response, closed, and that the backend saw exactly one request. Returns
// that response.
HttpResponse expect_forwarded_once(ProxyFixture& f, std::string_view shape) {
  f.backend().reset_stats();
  UniqueFd fd = connect_or_fail(f.port());
  std::string bytes = std::string(shape) + kSmuggled;
  INFO("sent:\n" << show(bytes));
  REQUIRE(send_all(fd.get(), bytes));
  HttpResponse r = read_response(fd.get(), 5s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.complete);
  bool closed = r.peer_closed;
  std::string after;
  if (!closed) after = read_until_close(fd.get(), 3s, &closed);
  INFO("after the response:\n" << show(after));
  CHECK(closed);
  CHECK(after.empty());
  BackendStats s = f.backend().stats();
  CHECK(s.requests == 1);
  CHECK(s.max_active == 1);
  return r;
}

// A request with a chunked body whose payload is itself a request line:
// an app that read the framing differently would run it.
std::string chunked_shape(std::string_view te_headers, std::string_view chunk_size_line_suffix = "") {
  std::string payload = kSmuggled;
  char size[16];
  std::snprintf(size, sizeof size, "%zx", payload.size());
  return kPost + "Connection: close\r\n" + std::string(te_headers) + "\r\n" + size +
         std::string(chunk_size_line_suffix) + "\r\n" + payload + "\r\n0\r\n\r\n";
}

}  // namespace

// --- Content-Length and Transfer-Encoding --------------------------------------------

TEST_CASE("smuggling: Content-Length then Transfer-Encoding is refused", "[smuggling]") {
  expect_refused(kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: Transfer-Encoding then Content-Length is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: two Content-Length headers with different values are refused",
          "[smuggling]") {
  expect_refused(kPost + "Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello", 400);
}

TEST_CASE("smuggling: two Content-Length headers with the same value are refused",
          "[smuggling]") {
  expect_refused(kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400);
}

TEST_CASE("smuggling: a Content-Length list in one header is refused", "[smuggling]") {
  expect_refused(kPost + "Content-Length: 5, 40\r\n\r\nhello", 400);
}

TEST_CASE("smuggling: a Content-Length with surrounding whitespace is normalised",
          "[smuggling]") {
  ProxyFixture f(simple_config());
  HttpResponse r = expect_forwarded_once(
      f, kPost + "Connection: close\r\nContent-Length: \t5 \r\n\r\nhello");
  CHECK(r.body == "hello");
}

// --- Transfer-Encoding variants ----------------------------------------------------------

// RFC 9112 §6.3: chunked not the final coding of a request is a 400.
TEST_CASE("smuggling: Transfer-Encoding 'chunked, identity' is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: Transfer-Encoding 'xchunked' is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: Transfer-Encoding 'chunked;q=1' is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked;q=1\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: Transfer-Encoding 'chunked' with a trailing space is normalised",
          "[smuggling]") {
  ProxyFixture f(simple_config());
  HttpResponse r = expect_forwarded_once(f, chunked_shape("Transfer-Encoding: chunked \r\n"));
  CHECK(r.body == kSmuggled);  // the payload stayed a body
}

TEST_CASE("smuggling: Transfer-Encoding 'chunked' with a trailing tab is refused",
          "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: Transfer-Encoding 'ChUnKeD' is normalised", "[smuggling]") {
  ProxyFixture f(simple_config());
  HttpResponse r = expect_forwarded_once(f, chunked_shape("Transfer-Encoding: ChUnKeD\r\n"));
  CHECK(r.body == kSmuggled);
}

TEST_CASE("smuggling: Transfer-Encoding with a vertical tab is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding:\x0b" "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: two Transfer-Encoding: chunked headers are refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n0\r\n\r\n",
                 400);
}

TEST_CASE("smuggling: Transfer-Encoding chunked then identity in two headers is refused",
          "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
                         "5\r\nhello\r\n0\r\n\r\n",
                 400);
}

// chunked is final, so the framing is clear, but sluice implements no other
// coding and forwards only chunked: RFC 9112 §6.1's 501, never a silent drop.
TEST_CASE("smuggling: Transfer-Encoding identity then chunked in two headers gets 501",
          "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n0\r\n\r\n",
                 501);
}

TEST_CASE("smuggling: Transfer-Encoding 'gzip, chunked' gets 501", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501);
}

// An empty value is no coding at all; llhttp would read no body and take the
// bytes after the head for the next request.
TEST_CASE("smuggling: an empty Transfer-Encoding is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: \r\n\r\n", 400);
}

TEST_CASE("smuggling: an empty Transfer-Encoding with Content-Length is refused",
          "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: \r\nContent-Length: 5\r\n\r\nhello", 400);
}

// RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
TEST_CASE("smuggling: HTTP/1.0 with Transfer-Encoding is refused", "[smuggling]") {
  expect_refused("POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                 400);
}

// --- line folding and line ends ------------------------------------------------------------

TEST_CASE("smuggling: obs-fold in Transfer-Encoding is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: obs-fold continuing Content-Length is refused", "[smuggling]") {
  expect_refused(kPost + "Content-Length: 5\r\n 0\r\n\r\nhello", 400);
}

TEST_CASE("smuggling: bare LF line ends in the head are refused", "[smuggling]") {
  expect_refused("POST /echo HTTP/1.1\nHost: x\nContent-Length: 5\n\nhello", 400);
}

TEST_CASE("smuggling: bare LF in the chunked framing is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400);
}

TEST_CASE("smuggling: a bare CR in the head is refused", "[smuggling]") {
  expect_refused(kPost + "X-A: a\rContent-Length: 5\r\n\r\nhello", 400);
}

// --- chunk sizes and extensions ----------------------------------------------------------

TEST_CASE("smuggling: chunk extensions are dropped, the body is kept", "[smuggling]") {
  ProxyFixture f(simple_config());
  HttpResponse r = expect_forwarded_once(
      f, chunked_shape("Transfer-Encoding: chunked\r\n", ";name=\"quoted value\";ext=1"));
  CHECK(r.body == kSmuggled);
}

TEST_CASE("smuggling: a chunk extension ended by a bare LF is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\n\r\n5;a=b\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: an overflowing chunk size is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
                 400);
}

TEST_CASE("smuggling: a chunk size with a 0x prefix is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: a chunk size with trailing whitespace is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: a chunk longer than its size is refused", "[smuggling]") {
  expect_refused(kPost + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400);
}

TEST_CASE("smuggling: a chunk size with leading zeros is normalised", "[smuggling]") {
  ProxyFixture f(simple_config());
  std::string payload = kSmuggled;
  char size[16];
  std::snprintf(size, sizeof size, "%zx", payload.size());
  HttpResponse r = expect_forwarded_once(
      f, kPost + "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000" +
             size + "\r\n" + payload + "\r\n0\r\n\r\n");
  CHECK(r.body == kSmuggled);
}

// --- NUL and control characters ------------------------------------------------------------

TEST_CASE("smuggling: NUL in the request target is refused", "[smuggling]") {
  static const char kBytes[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
  expect_refused(std::string(kBytes, sizeof kBytes - 1), 400);
}

TEST_CASE("smuggling: NUL in a header name is refused", "[smuggling]") {
  static const char kBytes[] = "GET / HTTP/1.1\r\nHost: x\r\nX-\0A: 1\r\n\r\n";
  expect_refused(std::string(kBytes, sizeof kBytes - 1), 400);
}

TEST_CASE("smuggling: NUL in a header value is refused", "[smuggling]") {
  static const char kBytes[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
  expect_refused(std::string(kBytes, sizeof kBytes - 1), 400);
}

TEST_CASE("smuggling: a control character in the request target is refused", "[smuggling]") {
  expect_refused("GET /a\x01" "b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST_CASE("smuggling: DEL in a header value is refused", "[smuggling]") {
  expect_refused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f" "b\r\n\r\n", 400);
}

// --- request target and request line --------------------------------------------------------

// RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host,
// for routing and for what the app sees.
TEST_CASE("smuggling: absolute-form with a mismatched Host uses the target's authority",
          "[smuggling]") {
  ProxyFixture f(R"(workers: 2
listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: a
    match: { host: a.example }
    upstream: app
  - name: others
    respond: { status: 403, body: "not a.example\n" }
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{B0}" }
logging: { level: info, access_log: { path: "off" } }
)");
  HttpResponse r = expect_forwarded_once(
      f, "GET http://a.example/headers HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n");
  INFO(r.body);
  CHECK(head_lines(r.body).at(0) == "GET /headers HTTP/1.1");
  CHECK(head_values(r.body, "Host") == std::vector<std::string>{"a.example"});
  CHECK(head_values(r.body, "X-Forwarded-Host") == std::vector<std::string>{"a.example"});

  // And the other way round: Host names the routed host, the target does not.
  f.backend().reset_stats();
  RawResult other = raw_exchange(
      f.port(), "GET http://b.example/headers HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
  CHECK(other.status == 403);
  CHECK(f.backend().stats().requests == 0);
}

TEST_CASE("smuggling: absolute-form with userinfo is refused", "[smuggling]") {
  expect_refused("GET http://a.example@b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400);
}

// The upstream request line is rebuilt with single spaces, so extra spaces
// between the parts never reach the app.
TEST_CASE("smuggling: extra spaces between request-line parts are normalised", "[smuggling]") {
  ProxyFixture f(simple_config());
  HttpResponse r = expect_forwarded_once(
      f, "GET  /headers  HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(head_lines(r.body).at(0) == "GET /headers HTTP/1.1");
}

TEST_CASE("smuggling: a space after the HTTP version is refused", "[smuggling]") {
  expect_refused("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
}

TEST_CASE("smuggling: a space before the method is refused", "[smuggling]") {
  expect_refused(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST_CASE("smuggling: a tab between request-line parts is refused", "[smuggling]") {
  expect_refused("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST_CASE("smuggling: a request line with more than three parts is refused", "[smuggling]") {
  expect_refused("GET /a HTTP/1.1 /b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

// llhttp takes "GET /" without a version for HTTP/0.9; sluice speaks 1.x only.
TEST_CASE("smuggling: a request line without a version is refused", "[smuggling]") {
  expect_refused("GET /\r\n\r\n", 400);
}

// --- Upgrade --------------------------------------------------------------------------------

// A client asks for an upgrade and sends more bytes at once. Until the app
// answers 101 those bytes are not a tunnel; when it answers anything else
// they must not reach it either (they would bypass routing).
TEST_CASE("smuggling: Upgrade answered without 101 never forwards the bytes after it",
          "[smuggling]") {
  // Answers every request head it reads with a 200; a smuggled request would
  // show up among its recorded heads.
  ScriptedUpstream app([](ScriptedUpstream& self, int fd) {
    while (!self.read_request(fd, 1500ms).empty()) {
      if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 5s)) return;
    }
  });
  ProxyFixture f(simple_config("", "", {"{S0}"}), Setup{.backends = 0, .backend_args = {}},
                 {app.port()});
  for (std::string upgrade : {"websocket", "h2c"}) {
    INFO("Upgrade: " << upgrade);
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: " + upgrade +
                                   "\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                                   "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
                                   kSmuggled));
    HttpResponse r = read_response(fd.get(), 5s);
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
    CHECK((r.peer_closed || wait_peer_closed(fd.get(), 3s)));
  }
  // Whatever sluice might still send has had time to arrive.
  std::this_thread::sleep_for(300ms);
  auto heads = app.heads();
  CHECK(heads.size() == 2);
  for (const auto& h : heads) {
    INFO(show(h));
    CHECK(h.rfind("GET /chat HTTP/1.1\r\n", 0) == 0);
  }
}
