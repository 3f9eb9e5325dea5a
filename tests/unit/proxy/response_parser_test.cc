#include "proxy/response_parser.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace sluice::proxy {
namespace {

struct RecordingSink final : ResponseSink {
  int heads = 0;
  uint16_t status = 0;
  BodyFraming framing = BodyFraming::None;
  std::string body;
  bool stop_at_head = false;

  bool on_response_head(ResponseHead& head) override {
    ++heads;
    status = head.status;
    framing = head.framing;
    return !stop_at_head;
  }
  bool on_response_body(const char* at, size_t len) override {
    body.append(at, len);
    return true;
  }
};

struct Fixture {
  RecordingSink sink;
  ResponseParser parser;
  explicit Fixture(bool head_request = false, bool upgrade = false) {
    parser.start(sink, head_request, upgrade);
  }
};

TEST_CASE("A Content-Length response completes and leaves what follows unused",
          "[response_parser]") {
  Fixture f;
  std::string_view response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
  std::string in = std::string(response) + "junk";
  ResponseStep step = f.parser.execute(in);
  CHECK(step.progress == ResponseProgress::Done);
  CHECK(step.used == response.size());
  CHECK(f.parser.done());
  CHECK(f.sink.heads == 1);
  CHECK(f.sink.framing == BodyFraming::Length);
  CHECK(f.sink.body == "hello");
  const ResponseHead& h = f.parser.head();
  CHECK(h.status == 200);
  CHECK(h.view(h.reason) == "OK");
  CHECK(h.content_length == 5);
  CHECK(h.keep_alive);
  REQUIRE(h.headers.size() == 2);
  CHECK(h.view(h.headers[1].name) == "X-A");
  CHECK(h.view(h.headers[1].value) == "b");
}

TEST_CASE("A chunked response is decoded, byte by byte as well as whole", "[response_parser]") {
  std::string_view response =
      "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  Fixture whole;
  CHECK(whole.parser.execute(response).progress == ResponseProgress::Done);
  CHECK(whole.sink.body == "abcde");
  CHECK(whole.sink.framing == BodyFraming::Chunked);

  Fixture split;
  for (size_t i = 0; i < response.size(); ++i) {
    ResponseStep step = split.parser.execute(response.substr(i, 1));
    REQUIRE(step.progress == (i + 1 == response.size() ? ResponseProgress::Done : ResponseProgress::More));
  }
  CHECK(split.sink.body == "abcde");
}

TEST_CASE("Interim 1xx responses are skipped; the final head is the one reported",
          "[response_parser]") {
  Fixture f;
  ResponseStep step = f.parser.execute(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 204 No Content\r\nX-Final: 1\r\n\r\n");
  CHECK(step.progress == ResponseProgress::Done);
  CHECK(f.sink.heads == 1);
  CHECK(f.sink.status == 204);
  REQUIRE(f.parser.head().headers.size() == 1);  // the 103's Link is gone
  CHECK(f.parser.head().view(f.parser.head().headers[0].name) == "X-Final");
}

// Found by tests/fuzz/response_fuzz: llhttp read a 1xx's Content-Length
// worth of bytes as its body, and they reached the client before any head.
TEST_CASE("An interim response has no body whatever it claims", "[response_parser][fuzz]") {
  Fixture f;
  ResponseStep step = f.parser.execute(
      "HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\nxxHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz");
  CHECK(step.progress == ResponseProgress::Invalid);  // "xx" is not a status line
  CHECK(f.sink.heads == 0);
  CHECK(f.sink.body.empty());

  Fixture ok;
  step = ok.parser.execute(
      "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz");
  CHECK(step.progress == ResponseProgress::Done);
  CHECK(ok.sink.status == 200);
  CHECK(ok.sink.body == "z");
}

// Found by tests/fuzz/response_fuzz: with "Transfer-Encoding: gzip", llhttp
// read a 204's "body" until EOF and the bytes reached the client after the
// bodiless head, where they would read as the next response.
TEST_CASE("204 and 304 end with their head whatever their framing headers say",
          "[response_parser][fuzz]") {
  for (std::string_view status : {"204 No Content", "304 Not Modified"}) {
    for (std::string_view framing : {"Transfer-Encoding: gzip", "Transfer-Encoding: chunked",
                                     "Content-Length: 5"}) {
      Fixture f;
      std::string head = "HTTP/1.1 " + std::string(status) + "\r\n" + std::string(framing) + "\r\n\r\n";
      ResponseStep step = f.parser.execute(head + "HTTP/1.1 200 OK\r\n\r\nsmuggled");
      CHECK(step.progress == ResponseProgress::Done);
      CHECK(step.used == head.size());
      CHECK(f.sink.framing == BodyFraming::None);
      CHECK(f.sink.body.empty());
    }
  }
}

TEST_CASE("A body without framing ends at EOF and is not kept alive", "[response_parser]") {
  Fixture f;
  ResponseStep step = f.parser.execute("HTTP/1.1 200 OK\r\n\r\npart one, ");
  CHECK(step.progress == ResponseProgress::More);
  CHECK(f.parser.execute("part two").progress == ResponseProgress::More);
  CHECK(f.sink.framing == BodyFraming::UntilClose);
  CHECK_FALSE(f.parser.head().keep_alive);
  CHECK(f.parser.finish_at_eof());
  CHECK(f.parser.done());
  CHECK(f.sink.body == "part one, part two");
}

TEST_CASE("EOF in a Content-Length or chunked body is not a complete response",
          "[response_parser]") {
  Fixture length;
  length.parser.execute("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
  CHECK_FALSE(length.parser.finish_at_eof());
  Fixture chunked;
  chunked.parser.execute("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc");
  CHECK_FALSE(chunked.parser.finish_at_eof());
  Fixture no_head;
  no_head.parser.execute("HTTP/1.1 200 OK\r\n");
  CHECK_FALSE(no_head.parser.finish_at_eof());
}

TEST_CASE("The response to HEAD has no body whatever its head says", "[response_parser]") {
  Fixture f(/*head_request=*/true);
  std::string_view response = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  ResponseStep step = f.parser.execute(response);
  CHECK(step.progress == ResponseProgress::Done);
  CHECK(step.used == response.size());
  CHECK(f.sink.framing == BodyFraming::None);
  CHECK(f.parser.head().content_length == 0);
}

TEST_CASE("A 101 stops at its head: the rest is tunnel data", "[response_parser]") {
  Fixture f(/*head_request=*/false, /*upgrade=*/true);
  std::string_view head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  std::string in = std::string(head) + "\x81\x02hi";
  ResponseStep step = f.parser.execute(in);
  CHECK(step.progress == ResponseProgress::Upgrade);
  CHECK(step.used == head.size());
  CHECK(f.sink.status == 101);
  CHECK_FALSE(f.parser.done());
}

// Found by tests/fuzz/response_fuzz: a 101 answering a request that asked
// for no upgrade was relayed, and the client's connection became a tunnel.
TEST_CASE("A 101 to a request that asked for no upgrade is invalid", "[response_parser][fuzz]") {
  Fixture f;
  ResponseStep step = f.parser.execute("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw");
  CHECK(step.progress == ResponseProgress::Invalid);
  CHECK(std::string_view(step.error) == "101 to a request that asked for no upgrade");
  CHECK(f.sink.heads == 0);
  // An interim 1xx before the final response is still fine.
  Fixture interim;
  CHECK(interim.parser.execute("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .progress == ResponseProgress::Done);
}

TEST_CASE("Invalid responses and oversized heads are refused", "[response_parser]") {
  Fixture garbage;
  ResponseStep step = garbage.parser.execute("SMTP ready\r\n");
  CHECK(step.progress == ResponseProgress::Invalid);
  CHECK(step.error != nullptr);
  CHECK_FALSE(garbage.parser.head_done());

  Fixture both;
  step = both.parser.execute(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  CHECK(step.progress == ResponseProgress::Invalid);

  Fixture big;
  std::string huge = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(ResponseParser::kMaxHead + 1, 'a');
  step = big.parser.execute(huge);
  CHECK(step.progress == ResponseProgress::Invalid);
  CHECK(std::string_view(step.error) == "response head too large");

  // Whole, in one read (a 256 KiB input block holds it): still too large.
  Fixture whole;
  step = whole.parser.execute("HTTP/1.1 200 OK\r\nX-Big: " + std::string(ResponseParser::kMaxHead + 1, 'a') +
                              "\r\nContent-Length: 2\r\n\r\nok");
  CHECK(step.progress == ResponseProgress::Invalid);
  CHECK(std::string_view(step.error) == "response head too large");
  CHECK_FALSE(whole.parser.head_done());
}

// The response-side twin of the empty-name request header found by
// tests/fuzz/request_fuzz: llhttp 8 accepts ": x" as a header line.
TEST_CASE("A response header with an empty name makes the response invalid",
          "[response_parser][fuzz]") {
  Fixture f;
  ResponseStep step = f.parser.execute("HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n");
  CHECK(step.progress == ResponseProgress::Invalid);
  CHECK(std::string_view(step.error) == "empty header name");
  CHECK(f.sink.heads == 0);
}

// Found by tests/fuzz/response_fuzz: llhttp 8 accepted
// "Transfe c%-Encoding: chunked" from upstream, and sluice passed the name on.
TEST_CASE("A response header name that is not a token makes the response invalid",
          "[response_parser][fuzz]") {
  for (std::string_view bad : {"Transfe c%-Encoding: chunked", "Transfer-Encoding : chunked",
                               "X\x01Y: 1", "X(Y): 1"}) {
    Fixture f;
    std::string in = "HTTP/1.1 200 OK\r\n" + std::string(bad) + "\r\nContent-Length: 0\r\n\r\n";
    ResponseStep step = f.parser.execute(in);
    CHECK(step.progress == ResponseProgress::Invalid);
    CHECK(f.sink.heads == 0);
  }
  Fixture ok;
  CHECK(ok.parser.execute("HTTP/1.1 200 OK\r\nX-A_b.c~!: 1\r\nContent-Length: 0\r\n\r\n").progress ==
        ResponseProgress::Done);
}

// Found by tests/fuzz/response_fuzz: "HTTP/1.1 20 OK" was passed on.
TEST_CASE("A status outside 100..599 makes the response invalid", "[response_parser][fuzz]") {
  for (std::string_view status : {"20", "0", "99", "600", "999"}) {
    Fixture f;
    std::string in = "HTTP/1.1 " + std::string(status) + " X\r\nContent-Length: 0\r\n\r\n";
    ResponseStep step = f.parser.execute(in);
    CHECK(step.progress == ResponseProgress::Invalid);
    CHECK(f.sink.heads == 0);
  }
  for (std::string_view status : {"100", "599"}) {
    Fixture f;
    std::string in = "HTTP/1.1 " + std::string(status) + " X\r\nContent-Length: 0\r\n\r\n";
    if (status == "100") in += "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    CHECK(f.parser.execute(in).progress == ResponseProgress::Done);
  }
}

TEST_CASE("A sink that stops at the head stops the parser", "[response_parser]") {
  Fixture f;
  f.sink.stop_at_head = true;
  ResponseStep step = f.parser.execute("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab");
  CHECK(step.progress == ResponseProgress::Stopped);
  CHECK(f.sink.body.empty());
}

TEST_CASE("start() makes the parser ready for the next response", "[response_parser]") {
  Fixture f;
  CHECK(f.parser.execute("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na").progress ==
        ResponseProgress::Done);
  f.parser.start(f.sink, false, false);
  CHECK_FALSE(f.parser.done());
  CHECK(f.parser.head().headers.empty());
  CHECK(f.parser.execute("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").progress ==
        ResponseProgress::Done);
  CHECK(f.sink.status == 404);
}

}  // namespace
}  // namespace sluice::proxy
