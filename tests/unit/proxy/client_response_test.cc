#include "proxy/client_response.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "proxy/response_builder.h"

namespace sluice::proxy {
namespace {

ResponseHead head_of(uint16_t status, BodyFraming framing,
                     std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
  ResponseHead h;
  h.status = status;
  h.framing = framing;
  for (const auto& [name, value] : headers) {
    HeaderField f;
    f.name = {static_cast<uint32_t>(h.buf.size()), static_cast<uint32_t>(name.size())};
    h.buf.append(name);
    f.value = {static_cast<uint32_t>(h.buf.size()), static_cast<uint32_t>(value.size())};
    h.buf.append(value);
    h.headers.push_back(f);
  }
  return h;
}

std::string client_head(const ResponseHead& h, const ClientSide& side) {
  std::string out;
  build_client_head(out, h, plan_client_response(h, side).head);
  return out;
}

TEST_CASE("A body of unknown length is chunked for HTTP/1.1 and closed for HTTP/1.0",
          "[client_response]") {
  ResponseHead chunked = head_of(200, BodyFraming::Chunked, {{"Transfer-Encoding", "chunked"}});
  ClientResponsePlan p11 = plan_client_response(chunked, {});
  CHECK(p11.chunk);
  CHECK_FALSE(p11.close_after);
  CHECK(client_head(chunked, {}) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");

  ClientSide http10;
  http10.http10 = true;
  ResponseHead until_close = head_of(200, BodyFraming::UntilClose, {{"X-A", "1"}});
  ClientResponsePlan p10 = plan_client_response(until_close, http10);
  CHECK_FALSE(p10.chunk);
  CHECK(p10.close_after);
  CHECK(client_head(until_close, http10) == "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n");
}

TEST_CASE("A Content-Length body passes as it is; keep-alive is said to HTTP/1.0 clients",
          "[client_response]") {
  ResponseHead h = head_of(200, BodyFraming::Length, {{"Content-Length", "5"}});
  h.content_length = 5;
  ClientSide http10;
  http10.http10 = true;
  ClientResponsePlan p = plan_client_response(h, http10);
  CHECK_FALSE(p.chunk);
  CHECK_FALSE(p.close_after);
  CHECK(client_head(h, http10) == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n");
  ClientSide closing;
  closing.keep_alive = false;
  CHECK(plan_client_response(h, closing).close_after);
  CHECK(client_head(h, closing) == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
}

TEST_CASE("A 101 keeps its Upgrade and Connection and never says close", "[client_response]") {
  ResponseHead h = head_of(101, BodyFraming::None, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}});
  ClientSide side;
  side.upgrade = true;
  ClientResponsePlan p = plan_client_response(h, side);
  CHECK(p.close_after);  // no HTTP after a tunnel
  CHECK_FALSE(p.head.close);
  CHECK(client_head(h, side) ==
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
}

// Found by tests/fuzz/response_fuzz: a 204 from upstream with a
// Transfer-Encoding went to the client with it, and a client that believes
// it (llhttp 8 does) reads the next response as the 204's body.
TEST_CASE("A 204 reaches the client without framing headers", "[client_response][fuzz]") {
  ResponseHead h = head_of(204, BodyFraming::None,
                           {{"Transfer-Encoding", "gzip"}, {"Content-Length", "0"}, {"X-A", "1"}});
  CHECK(client_head(h, {}) == "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
  // A HEAD response keeps them: they describe what a GET would get.
  ResponseHead head = head_of(200, BodyFraming::None, {{"Transfer-Encoding", "chunked"}});
  CHECK(client_head(head, {}) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

// Found by tests/fuzz/response_fuzz: "Content-Length: 11" and an empty
// "Transfer-Encoding:" (llhttp 8 frames by the length and lets the empty one
// through) reached the client together, a head two parsers can read two ways.
TEST_CASE("A client never gets both Content-Length and Transfer-Encoding", "[client_response][fuzz]") {
  ResponseHead by_length = head_of(200, BodyFraming::Length,
                                   {{"Content-Length", "11"}, {"Transfer-Encoding", ""}, {"X-A", "1"}});
  by_length.content_length = 11;
  CHECK(client_head(by_length, {}) == "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: 1\r\n\r\n");
  ResponseHead chunked = head_of(200, BodyFraming::Chunked,
                                 {{"Content-Length", "11"}, {"Transfer-Encoding", "chunked"}});
  CHECK(client_head(chunked, {}) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ResponseHead head = head_of(200, BodyFraming::None, {{"Content-Length", "7"}, {"Transfer-Encoding", "gzip"}});
  CHECK(client_head(head, {}) == "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n");
}

TEST_CASE("format_chunk_size writes lower-case hex and CRLF", "[client_response]") {
  char line[24];
  CHECK(std::string_view(line, format_chunk_size(line, 0)) == "0\r\n");
  CHECK(std::string_view(line, format_chunk_size(line, 255)) == "ff\r\n");
  CHECK(std::string_view(line, format_chunk_size(line, SIZE_MAX)) == "ffffffffffffffff\r\n");
}

}  // namespace
}  // namespace sluice::proxy
