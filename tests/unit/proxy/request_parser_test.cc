#include "proxy/request_parser.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace sluice::proxy {
namespace {

// Records what the parser hands over after the head.
struct RecordingSink final : RequestSink {
  std::string body;
  int body_calls = 0;
  int ends = 0;
  bool fail_body = false;

  bool on_request_body(const char* at, size_t len) override {
    ++body_calls;
    body.append(at, len);
    return !fail_body;
  }
  bool on_request_end() override {
    ++ends;
    return true;
  }
};

struct Fixture {
  RequestHead head;
  RecordingSink sink;
  RequestParser parser;
  config::ListenerLimits limits;

  explicit Fixture(config::ListenerLimits l = {}) : limits(l) { parser.start(head, sink, limits); }

  // Feeds everything, resuming after a head pause the way the connection
  // does once the body may flow; stops at a reject or a message end.
  ParseStep feed_all(std::string_view in, size_t* total_used = nullptr) {
    ParseStep step;
    size_t used = 0;
    while (used < in.size()) {
      step = parser.execute(in.substr(used));
      used += step.used;
      if (step.reject != 0 || parser.message_done()) break;
      if (step.used == 0 || parser.head_done()) parser.resume();
    }
    if (total_used) *total_used = used;
    return step;
  }
};

int reject_of(std::string_view request, config::ListenerLimits limits = {}) {
  Fixture f(limits);
  return f.feed_all(request).reject;
}

TEST_CASE("A GET is parsed whole into the head, and only its bytes are used", "[request_parser]") {
  Fixture f;
  std::string_view first = "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Dup: one\r\nx-dup: two\r\n\r\n";
  std::string in = std::string(first) + "GET /next HTTP/1.1\r\n";
  ParseStep step = f.parser.execute(in);
  CHECK(step.reject == 0);
  CHECK(step.used == first.size());  // the pipelined request waits
  CHECK(f.parser.head_done());
  CHECK(f.parser.message_done());
  CHECK(f.parser.head_bytes() == first.size());
  CHECK(f.head.method_view() == "GET");
  CHECK(f.head.target_view() == "/a?b=1");
  REQUIRE(f.head.headers.size() == 3);
  CHECK(f.head.view(f.head.headers[0].name) == "Host");
  CHECK(f.head.view(f.head.headers[0].value) == "example.com");
  CHECK(f.head.header("x-dup") == "one");
  CHECK(f.head.view(f.head.headers[2].value) == "two");
  CHECK(f.head.keep_alive);
  CHECK_FALSE(f.head.has_body);
  CHECK(f.sink.ends == 1);
  CHECK(f.sink.body_calls == 0);
}

TEST_CASE("A head split into single bytes parses the same", "[request_parser]") {
  Fixture f;
  std::string_view in = "GET /split HTTP/1.0\r\nHost: h\r\nUser-Agent: t\r\n\r\n";
  for (size_t i = 0; i < in.size(); ++i) {
    ParseStep step = f.parser.execute(in.substr(i, 1));
    REQUIRE(step.reject == 0);
    REQUIRE(step.used == 1);
  }
  CHECK(f.parser.message_done());
  CHECK(f.head.target_view() == "/split");
  CHECK(f.head.http_minor == 0);
  CHECK_FALSE(f.head.keep_alive);  // HTTP/1.0 without keep-alive
  CHECK(f.head.header("user-agent") == "t");
}

TEST_CASE("A body pauses the parser after the head until resume()", "[request_parser]") {
  Fixture f;
  std::string_view head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  std::string in = std::string(head) + "hello";
  ParseStep step = f.parser.execute(in);
  CHECK(step.reject == 0);
  CHECK(step.used == head.size());
  CHECK(f.parser.head_done());
  CHECK_FALSE(f.parser.message_done());
  CHECK(f.head.has_body);
  CHECK(f.head.content_length == 5);
  CHECK(f.sink.body.empty());
  f.parser.resume();
  step = f.parser.execute(std::string_view(in).substr(head.size()));
  CHECK(step.reject == 0);
  CHECK(step.used == 5);
  CHECK(f.sink.body == "hello");
  CHECK(f.sink.ends == 1);
  CHECK(f.parser.message_done());
  CHECK(f.parser.head_bytes() == head.size());  // body bytes are not head bytes
}

TEST_CASE("A chunked body reaches the sink decoded", "[request_parser]") {
  Fixture f;
  ParseStep step = f.feed_all(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n");
  CHECK(step.reject == 0);
  CHECK(f.head.chunked);
  CHECK(f.head.has_body);
  CHECK(f.sink.body == "abcdefg");
  CHECK(f.sink.ends == 1);
}

TEST_CASE("Expect: 100-continue is reported only with a body", "[request_parser]") {
  Fixture with_body;
  with_body.parser.execute(
      "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
  CHECK(with_body.parser.expect_continue());
  Fixture without;
  without.parser.execute("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
  CHECK_FALSE(without.parser.expect_continue());
}

TEST_CASE("An upgrade request stops at its head: later bytes are the tunnel's", "[request_parser]") {
  Fixture f;
  std::string_view head =
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  std::string in = std::string(head) + "\x81\x05hello";
  ParseStep step = f.parser.execute(in);
  CHECK(step.reject == 0);
  CHECK(step.used == head.size());
  CHECK(f.head.upgrade);
  CHECK(f.parser.message_done());
}

TEST_CASE("Malformed or smuggling-shaped heads are rejected with the right status",
          "[request_parser]") {
  // Space before the colon (RFC 9112 §5.1) and obs-fold (§5.2).
  CHECK(reject_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n") == 400);
  CHECK(reject_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n") == 400);
  CHECK(reject_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tfolded\r\n\r\n") == 400);
  // Content-Length with Transfer-Encoding, twice different, or not a number.
  CHECK(reject_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
  CHECK(reject_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n") ==
        400);
  CHECK(reject_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3x\r\n\r\n") == 400);
  // A Transfer-Encoding that is not chunked-last cannot be framed (RFC 9112 §6.3).
  CHECK(reject_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n") == 400);
  CHECK(reject_of("GET / HTTP/1.1\r\nHost: h\r\nBad\x01Name: v\r\n\r\n") == 400);
  CHECK(reject_of("G\x01T / HTTP/1.1\r\n\r\n") == 400);
  CHECK(reject_of("GET / HTTP/7.3\r\nHost: h\r\n\r\n") == 505);
  CHECK(reject_of("GET / HTTP/1.1\nHost: h\n\n") == 400);  // bare LF in strict mode
  CHECK(reject_of("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n") == 405);
  CHECK(reject_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
}

// Found by tests/fuzz/request_fuzz: llhttp 8 (strict) hands over a line
// starting with ':' as a header with an empty name, and it was forwarded
// upstream as ": x".
TEST_CASE("A header with an empty name is refused", "[request_parser][fuzz]") {
  CHECK(reject_of("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n") == 400);
  CHECK(reject_of("GET / HTTP/1.1\r\n:\r\nHost: h\r\n\r\n") == 400);
  CHECK(reject_of("GET /x?A\n:\r\nA:\r\n\n") == 400);  // the fuzzer's input, shortened
  // Split so the name arrives in pieces: a real name is still fine.
  Fixture f;
  std::string_view in = "GET / HTTP/1.1\r\nHo";
  CHECK(f.parser.execute(in).reject == 0);
  ParseStep step = f.parser.execute("st: h\r\n\r\n");
  CHECK(step.reject == 0);
  CHECK(f.head.header("host") == "h");
}

// Found by tests/fuzz/request_fuzz: llhttp passes chunked trailers to the
// header callbacks; they were appended to the (already routed) head and
// counted with it, so big trailers earned a 431 and a trailer "User-Agent"
// showed up as the request's in the access log.
TEST_CASE("Trailers are checked and counted but never join the head", "[request_parser][fuzz]") {
  std::string_view head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  Fixture f;
  ParseStep step = f.feed_all(std::string(head) + "2\r\nok\r\n0\r\nUser-Agent: evil\r\nX-T: 1\r\n\r\n");
  CHECK(step.reject == 0);
  CHECK(f.parser.message_done());
  CHECK(f.sink.body == "ok");
  CHECK(f.head.headers.size() == 2);
  CHECK(f.head.header("user-agent").empty());

  config::ListenerLimits small;
  small.max_header_bytes = 64;
  std::string big = std::string(head) + "0\r\nX-Big: " + std::string(80, 'v') + "\r\n\r\n";
  CHECK(reject_of(big, small) == 431);
  CHECK(reject_of(std::string(head) + "0\r\nBad Name: v\r\n\r\n") == 400);
  CHECK(reject_of(std::string(head) + "0\r\n: v\r\n\r\n") == 400);
  CHECK(reject_of(std::string(head) + "0\r\nA: 1\r\n: v\r\n\r\n") == 400);
}

TEST_CASE("Size limits: 414 for the target, 431 for the head, 413 for the body",
          "[request_parser]") {
  config::ListenerLimits small;
  small.max_header_bytes = 64;
  small.max_body_bytes = 8;
  CHECK(reject_of("GET /" + std::string(80, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", small) == 414);
  CHECK(reject_of("GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(80, 'v') + "\r\n\r\n",
                  small) == 431);
  // Many short empty headers: the callbacks' bytes stay small, the head does not.
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 12; ++i) many += "A:\r\n";
  many += "\r\n";
  CHECK(reject_of(many, small) == 431);
  CHECK(reject_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n", small) == 413);
  CHECK(reject_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n12345678", small) == 0);
  // A chunked body is counted as it arrives.
  Fixture f(small);
  ParseStep step = f.feed_all(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n");
  CHECK(step.reject == 413);
  CHECK(f.sink.body == "12345");  // the bytes over the limit never reach the sink
}

TEST_CASE("A sink that fails stops the request", "[request_parser]") {
  Fixture f;
  f.sink.fail_body = true;
  ParseStep step = f.feed_all("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab");
  CHECK(step.reject == 400);
  CHECK(f.sink.ends == 0);
}

TEST_CASE("start() gives a fresh parser for the next request", "[request_parser]") {
  Fixture f;
  CHECK(f.feed_all("GET /bad HTTP/1.1\r\nHost : h\r\n\r\n").reject == 400);
  f.head.clear();
  f.parser.start(f.head, f.sink, f.limits);
  CHECK_FALSE(f.parser.head_done());
  ParseStep step = f.parser.execute("GET /good HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(step.reject == 0);
  CHECK(f.head.target_view() == "/good");
}

}  // namespace
}  // namespace sluice::proxy
