// The request path without sockets: client bytes go through RequestParser
// (what ClientConnection runs on the loop) and, once a head is complete,
// through route_request (what the worker runs: routing and the upstream
// head). Pipelined requests follow one another as on a keep-alive
// connection. Checked for every request:
//   - a rejected request gets a 4xx/5xx status from the parser's set;
//   - a forwarded one re-parses strictly (llhttp, as the app would) as
//     exactly one request, head and body, with nothing left over, whose
//     body is the body the client sent; it never carries both
//     Content-Length and Transfer-Encoding, and its framing is what was
//     parsed from the client;
//   - every line of the upstream head is well formed, with no hop-by-hop
//     header (but a WebSocket handshake's Upgrade), no Expect, one Host,
//     and the client's address last in X-Forwarded-For.
//
// Input: byte 0 = options (bit 0: small limits), byte 1 = read size
// (0: everything at once), then the client's bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/load.h"
#include "proxy/client_response.h"
#include "proxy/http_util.h"
#include "proxy/request_parser.h"
#include "proxy/routing.h"
#include "tests/fuzz/fuzz_support.h"

namespace sluice::fuzz {
namespace {

using proxy::ParseStep;
using proxy::RequestHead;

constexpr std::string_view kConfig = R"(
workers: 1
listeners:
  - name: web
    listen: "127.0.0.1:8080"
routes:
  - name: api
    match: { host: "api.example.com", path_prefix: "/api/", methods: [GET, POST, PUT] }
    upstream: app
    rewrite: { strip_prefix: "/api", add_prefix: "/v1" }
    request_headers: { set: { X-Env: prod }, remove: [X-Debug, X-Forwarded-For] }
  - name: wild
    match: { host: "*.example.com", path_regex: "^/r/[0-9]+$" }
    upstream: app
    request_headers: { set: { Host: internal.example, X-Forwarded-Proto: https } }
  - name: canary
    match: { headers: { X-Canary: "1" } }
    upstream: app
    rewrite: { add_prefix: "/canary/" }
  - name: health
    match: { path_exact: "/healthz" }
    respond: { status: 200, body: "ok\n" }
  - name: all
    upstream: app
upstreams:
  app:
    servers: [{ address: "127.0.0.1:5001" }]
)";

constexpr std::string_view kClientIp = "192.0.2.1";

const config::ConfigPtr& fuzz_config() {
  static const config::ConfigPtr cfg = [] {
    auto loaded = config::load_string(kConfig, "request_fuzz.yaml");
    if (!loaded) {
      for (const auto& e : loaded.error()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
      std::abort();
    }
    return *loaded;
  }();
  return cfg;
}

// The request body as ClientConnection's sink frames it for the upstream:
// decoded by the parser, re-chunked when the client sent chunks.
struct ForwardingSink final : proxy::RequestSink {
  const RequestHead* head = nullptr;
  std::string decoded;
  std::string framed;
  bool ended = false;

  bool on_request_body(const char* at, size_t len) override {
    decoded.append(at, len);
    if (head->chunked) {
      char line[24];
      framed.append(line, proxy::format_chunk_size(line, len)).append(at, len).append("\r\n");
    } else {
      framed.append(at, len);
    }
    return true;
  }
  bool on_request_end() override {
    ended = true;
    if (head->chunked) framed.append(proxy::kLastChunk);
    return true;
  }
};

bool parser_status(int status) {
  switch (status) {
    case 400: case 405: case 413: case 414: case 431: case 501: case 505: return true;
    default: return false;
  }
}

// Feeds `in` in pieces of `piece` bytes (0: all), the way reads arrive,
// until the parser stops at a pause, a reject or the end of the input.
// Returns the step that ended it and advances `in` past what was used.
ParseStep feed(proxy::RequestParser& parser, std::string_view& in, size_t piece,
               bool until_head) {
  ParseStep last;
  while (!in.empty()) {
    // What the connection's buffer holds: everything not yet consumed, up
    // to what has "arrived" so far.
    std::string_view avail = piece == 0 ? in : in.substr(0, piece);
    last = parser.execute(avail);
    in.remove_prefix(last.used);
    if (last.reject != 0) return last;
    if (until_head ? parser.head_done() : parser.message_done()) return last;
    if (last.used < avail.size()) return last;  // paused
  }
  return last;
}

void check_forwarded(const RequestHead& head, const proxy::RouteResult& r,
                     const ForwardingSink& sink) {
  const std::string& up = r.upstream_head;
  context() = up + sink.framed;
  // Our own reading of every line.
  FUZZ_CHECK(check_head_lines(up) >= 1);
  std::string_view start = std::string_view(up).substr(0, up.find("\r\n"));
  FUZZ_CHECK(start.starts_with(head.method_view()));
  FUZZ_CHECK(start.ends_with(" HTTP/1.1"));
  std::string_view target =
      start.substr(head.method_view().size() + 1,
                   start.size() - head.method_view().size() - 1 - std::string_view(" HTTP/1.1").size());
  FUZZ_CHECK(!target.empty());
  for (char c : target) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);

  // The app's reading: one message, ending exactly where the bytes end.
  std::string wire = up + sink.framed;
  Reparsed p = reparse(HTTP_REQUEST, wire);
  FUZZ_CHECK(p.err == HPE_PAUSED || (p.err == HPE_PAUSED_UPGRADE && head.upgrade));
  FUZZ_CHECK(p.messages == 1);
  FUZZ_CHECK(p.used == wire.size());
  FUZZ_CHECK(p.body == sink.decoded);
  FUZZ_CHECK(p.method == head.method_view());
  FUZZ_CHECK(p.target == target);

  // Framing: what the client sent, and never both.
  const size_t te = p.count("transfer-encoding");
  const size_t cl = p.count("content-length");
  FUZZ_CHECK(te == 0 || cl == 0);
  if (head.chunked) {
    FUZZ_CHECK(te == 1 && p.value("transfer-encoding") == "chunked");
  } else {
    FUZZ_CHECK(te == 0);
    FUZZ_CHECK(cl <= 1);
    if (head.has_body) {
      FUZZ_CHECK(cl == 1 && p.value("content-length") == std::to_string(head.content_length));
      FUZZ_CHECK(sink.decoded.size() == head.content_length);
    }
  }

  // Hop-by-hop fields stay on the client's hop.
  const bool websocket = proxy::is_websocket_upgrade(head);
  for (const auto& [name, value] : p.headers) {
    if (same_name(name, "upgrade")) {
      FUZZ_CHECK(websocket);
    } else if (same_name(name, "connection")) {
      FUZZ_CHECK(websocket && value == "Upgrade");
    } else if (!same_name(name, "transfer-encoding")) {
      FUZZ_CHECK(!proxy::is_hop_by_hop(name));
    }
    FUZZ_CHECK(!same_name(name, "expect"));
  }
  FUZZ_CHECK(p.count("host") == 1);
  if (p.count("x-forwarded-for") > 0) {
    FUZZ_CHECK(p.count("x-forwarded-for") == 1);
    FUZZ_CHECK(p.value("x-forwarded-for").ends_with(kClientIp));
  }
}

void run(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const bool small = (data[0] & 1) != 0;
  const size_t piece = data[1];
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  config::ListenerLimits limits = fuzz_config()->listeners.front().limits;
  if (small) {
    limits.max_header_bytes = 256;
    limits.max_body_bytes = 64;
  }
  proxy::RequestParser parser;
  std::string scratch;  // the worker's reused upstream_head buffer
  for (int n = 0; n < 16 && !in.empty(); ++n) {
    RequestHead head;
    ForwardingSink sink;
    sink.head = &head;
    parser.start(head, sink, limits);

    ParseStep step = feed(parser, in, piece, /*until_head=*/true);
    if (step.reject != 0) {
      context() = "head rejected with " + std::to_string(step.reject);
      FUZZ_CHECK(parser_status(step.reject));
      return;  // sluice answers and closes
    }
    if (!parser.head_done()) return;  // incomplete: sluice would wait, then 408
    FUZZ_CHECK(!head.chunked || head.has_body);
    FUZZ_CHECK(head.content_length <= limits.max_body_bytes);
    FUZZ_CHECK(parser.head_bytes() <= limits.max_header_bytes);

    head.client_ip = kClientIp;
    proxy::RouteJob job;
    job.cfg = fuzz_config();
    job.head = std::move(head);
    job.upstream_head = std::move(scratch);
    proxy::RouteResult r = proxy::route_request(std::move(job));
    head = std::move(r.head);
    sink.head = &head;  // the head moved back; its buffers are the same
    if (r.outcome != proxy::RouteOutcome::Forward) {
      FUZZ_CHECK(r.upstream_head.empty());
      FUZZ_CHECK((r.route != nullptr) == (r.outcome == proxy::RouteOutcome::Respond));
      // A local answer: an unread body means the connection closes.
      if (head.has_body || !head.keep_alive || head.upgrade) return;
      scratch = std::move(r.upstream_head);
      continue;
    }
    FUZZ_CHECK(r.route != nullptr && r.route->upstream.has_value());
    const size_t headers_at_route = head.headers.size();
    if (head.has_body) {
      parser.resume();
      step = feed(parser, in, piece, /*until_head=*/false);
      if (step.reject != 0) {
        context() = "body rejected with " + std::to_string(step.reject) + ": " +
                    (step.error != nullptr ? step.error : "(sluice's own check)");
        // Too long, malformed, or trailers over max_header_bytes.
        FUZZ_CHECK(step.reject == 413 || step.reject == 400 || step.reject == 431);
        return;
      }
      if (!parser.message_done()) return;  // the body is still coming
    }
    FUZZ_CHECK(sink.ended);
    FUZZ_CHECK(head.headers.size() == headers_at_route);  // trailers stay out of the head
    check_forwarded(head, r, sink);
    if (!head.keep_alive || head.upgrade) return;
    scratch = std::move(r.upstream_head);
  }
}

}  // namespace
}  // namespace sluice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::fuzz::run(data, size);
  return 0;
}
