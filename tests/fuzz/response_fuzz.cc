// The response path without sockets: upstream bytes go through
// ResponseParser (what UpstreamConnection runs), the client head is built
// by plan_client_response + build_client_head and the body re-framed the
// way ClientConnection does. Checked:
//   - a complete response reaches the client as exactly one valid HTTP/1.1
//     response (strict llhttp re-parse), nothing left over, with the
//     upstream's status and the body parsed from upstream;
//   - it never carries both Content-Length and Transfer-Encoding, its
//     framing is the planned one, and "Connection: close" is there exactly
//     when the connection ends;
//   - a response cut short never looks complete to the client;
//   - a 101 only ever answers a request that asked to upgrade.
//
// Input: byte 0 = options (bit 0: HEAD request, bit 1: HTTP/1.0 client,
// bit 2: the client connection cannot be kept alive, bit 3: the client asked
// for a WebSocket upgrade, bit 4: the route edits response headers),
// byte 1 = read size (0: everything at once), then the upstream's bytes.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/client_response.h"
#include "proxy/http_util.h"
#include "proxy/response_builder.h"
#include "proxy/response_parser.h"
#include "tests/fuzz/fuzz_support.h"

namespace sluice::fuzz {
namespace {

using proxy::ResponseProgress;

const config::HeaderEdits& fuzz_edits() {
  static const config::HeaderEdits edits{{{"X-Served-By", "sluice"}}, {"Server"}};
  return edits;
}

// What the client receives, built as ClientConnection builds it.
struct ClientWire final : proxy::ResponseSink {
  proxy::ClientSide side;
  proxy::ClientResponsePlan plan;
  std::string out;      // bytes written to the client
  std::string decoded;  // the body as parsed from upstream
  uint16_t status = 0;
  proxy::BodyFraming framing = proxy::BodyFraming::None;
  uint64_t content_length = 0;
  int heads = 0;

  bool on_response_head(proxy::ResponseHead& h) override {
    ++heads;
    status = h.status;
    framing = h.framing;
    content_length = h.content_length;
    plan = proxy::plan_client_response(h, side);
    proxy::build_client_head(out, h, plan.head);
    return true;
  }
  bool on_response_body(const char* at, size_t len) override {
    decoded.append(at, len);
    if (plan.chunk) {
      char line[24];
      out.append(line, proxy::format_chunk_size(line, len)).append(at, len).append("\r\n");
    } else {
      out.append(at, len);
    }
    return true;
  }
};

uint64_t as_number(std::string_view digits) {
  while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t')) digits.remove_suffix(1);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  FUZZ_CHECK(ec == std::errc() && end == digits.data() + digits.size());
  return n;
}

void check_complete(const ClientWire& w, bool head_request) {
  FUZZ_CHECK(w.heads == 1);
  const size_t head_len = w.out.find("\r\n\r\n") + 4;
  FUZZ_CHECK(check_head_lines(std::string_view(w.out).substr(0, head_len)) >= 0);
  const bool close_delimited = w.plan.head.framing == proxy::ClientFraming::Close;
  Reparsed p = reparse(HTTP_RESPONSE, w.out, head_request, close_delimited);
  FUZZ_CHECK(p.messages == 1);
  if (close_delimited) {
    FUZZ_CHECK(p.err == HPE_OK || p.err == HPE_PAUSED);
  } else {
    FUZZ_CHECK(p.err == HPE_PAUSED);
    FUZZ_CHECK(p.used == w.out.size());
  }
  FUZZ_CHECK(p.status == w.status);
  FUZZ_CHECK(p.body == w.decoded);
  if (head_request) FUZZ_CHECK(w.decoded.empty());

  const size_t te = p.count("transfer-encoding");
  const size_t cl = p.count("content-length");
  FUZZ_CHECK(te == 0 || cl == 0);
  if (w.plan.chunk) {
    FUZZ_CHECK(te == 1 && p.value("transfer-encoding") == "chunked" && cl == 0);
  }
  if (close_delimited) FUZZ_CHECK(te == 0 && cl == 0);
  if (w.framing == proxy::BodyFraming::Length) {
    // Passed as the app wrote it ("03" is a valid 3).
    FUZZ_CHECK(cl == 1 && as_number(p.value("content-length")) == w.content_length);
    FUZZ_CHECK(w.decoded.size() == w.content_length);
  }
  const size_t closes = p.count("connection");
  if (w.plan.head.close) {
    FUZZ_CHECK(closes == 1 && p.value("connection") == "close");
  } else {
    FUZZ_CHECK(closes == (w.plan.head.keep_alive_10 ? 1u : 0u));
  }
  for (const auto& [name, value] : p.headers) {
    if (same_name(name, "connection") || same_name(name, "transfer-encoding")) continue;
    FUZZ_CHECK(!proxy::is_hop_by_hop(name));
  }
  if (w.side.edits != nullptr) {
    FUZZ_CHECK(p.count("server") == 0);
    FUZZ_CHECK(p.count("x-served-by") == 1 && p.value("x-served-by") == "sluice");
  }
}

void run(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const uint8_t opts = data[0];
  const bool head_request = (opts & 1) != 0;
  const size_t piece = data[1];
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  ClientWire wire;
  wire.side.http10 = (opts & 2) != 0;
  wire.side.keep_alive = (opts & 4) == 0;
  wire.side.upgrade = (opts & 8) != 0;
  wire.side.edits = (opts & 16) != 0 ? &fuzz_edits() : nullptr;

  proxy::ResponseParser parser;
  parser.start(wire, head_request, wire.side.upgrade);
  ResponseProgress progress = ResponseProgress::More;
  while (!in.empty() && progress == ResponseProgress::More) {
    std::string_view avail = piece == 0 ? in : in.substr(0, piece);
    proxy::ResponseStep step = parser.execute(avail);
    progress = step.progress;
    FUZZ_CHECK(step.used <= avail.size());
    FUZZ_CHECK(progress == ResponseProgress::More ? step.used == avail.size() : true);
    in.remove_prefix(avail.size());
  }
  FUZZ_CHECK(progress != ResponseProgress::Stopped);  // the sink never stops it
  if (progress == ResponseProgress::More && parser.finish_at_eof()) progress = ResponseProgress::Done;
  FUZZ_CHECK(parser.head_done() == (wire.heads == 1));
  // RFC 9110 §15: anything else is not a status to pass on.
  if (wire.heads == 1) FUZZ_CHECK(wire.status >= 100 && wire.status <= 599);
  context() = wire.out;

  if (progress == ResponseProgress::Upgrade) {
    FUZZ_CHECK(wire.status == 101);
    FUZZ_CHECK(wire.side.upgrade);  // never a tunnel the client did not ask for
    Reparsed p = reparse(HTTP_RESPONSE, wire.out);
    FUZZ_CHECK(p.status == 101 && p.used == wire.out.size());
    return;
  }
  if (progress == ResponseProgress::Done) {
    FUZZ_CHECK(parser.done());
    if (wire.plan.chunk) wire.out.append(proxy::kLastChunk);
    check_complete(wire, head_request);
    return;
  }
  // Invalid, or the server closed mid-response: sluice answers 502 if the
  // head has not gone out, else closes. Either way the client must not see
  // a complete response (a close-delimited body cannot tell, by design).
  if (!parser.head_done() || wire.plan.head.framing == proxy::ClientFraming::Close) return;
  Reparsed p = reparse(HTTP_RESPONSE, wire.out, head_request, /*eof=*/true);
  FUZZ_CHECK(p.messages == 0);
}

}  // namespace
}  // namespace sluice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::fuzz::run(data, size);
  return 0;
}
