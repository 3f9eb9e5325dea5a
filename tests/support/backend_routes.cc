#include "tests/support/backend_routes.h"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <optional>
#include <unordered_map>
#include <utility>

#include "tests/support/hash.h"
#include "tests/support/sha1.h"

namespace sluice::test {

namespace {

constexpr std::string_view kRootBody =
    "hello from the sluice demo backend; this body is padded to exactly one hundred "
    "bytes...............\n";
static_assert(kRootBody.size() == 100);

constexpr uint64_t kChunk = 64 * 1024;
// Bodies up to this size are built inline; larger ones are streamed.
constexpr uint64_t kInlineLimit = 256 * 1024;

// The /bytes pattern repeats every 26 bytes, so any run of up to kChunk
// bytes starting at offset `pos` is a slice of this buffer at pos % 26.
const std::string& pattern_window() {
  static const std::string w = pattern_body(kChunk + 26);
  return w;
}

// Hashing a large pattern costs milliseconds and benchmarks ask for the
// same sizes over and over, so results are remembered. Loop thread only.
uint64_t pattern_hash(uint64_t n) {
  static std::unordered_map<uint64_t, uint64_t> memo;
  auto it = memo.find(n);
  if (it != memo.end()) return it->second;
  BodyHasher h;
  for (uint64_t pos = 0; pos < n;) {
    uint64_t take = std::min(kChunk, n - pos);
    h.update(std::string_view(pattern_window()).substr(pos % 26, take));
    pos += take;
  }
  return memo[n] = h.digest();
}

std::string_view path_of(std::string_view url) { return url.substr(0, url.find('?')); }

std::optional<std::string_view> query_param(std::string_view url, std::string_view name) {
  size_t q = url.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = url.substr(q + 1);
  while (!rest.empty()) {
    std::string_view pair = rest.substr(0, rest.find('&'));
    rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> uint_param(std::string_view url, std::string_view name) {
  auto v = query_param(url, name);
  if (!v) return std::nullopt;
  uint64_t n;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size()) return std::nullopt;
  return n;
}

std::string_view reason_phrase(int status) {
  static constexpr std::pair<int, std::string_view> kReasons[] = {
      {101, "Switching Protocols"},
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {304, "Not Modified"},
      {400, "Bad Request"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {413, "Payload Too Large"},
      {429, "Too Many Requests"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (const auto& [code, text] : kReasons) {
    if (code == status) return text;
  }
  return "Status";
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

using HeaderList = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// How the body of a response is delimited.
enum class Framing : uint8_t { Length, Chunked, None };

// Status line and headers. Connection: close when `close`, keep-alive
// spelled out for HTTP/1.0 clients that asked for it.
void append_head(std::string& out, const Request& req, int status, Framing framing, uint64_t length,
                 bool close, HeaderList extra = {}) {
  out += "HTTP/1.1 ";
  append_uint(out, static_cast<uint64_t>(status));
  out.append(" ").append(reason_phrase(status)) += "\r\nServer: sluice-backend\r\n";
  for (const auto& [name, value] : extra) out.append(name).append(": ").append(value) += "\r\n";
  if (framing == Framing::Length) {
    out += "Content-Length: ";
    append_uint(out, length);
    out += "\r\n";
  } else if (framing == Framing::Chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  }
  if (close) {
    out += "Connection: close\r\n";
  } else if (req.http_minor == 0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
}

Reply text(const Request& req, int status, std::string_view body, HeaderList extra = {}) {
  Reply r;
  r.close = !req.keep_alive;
  append_head(r.bytes, req, status, Framing::Length, body.size(), r.close, extra);
  r.bytes.append(body);
  return r;
}

Reply stats_reply(const Request& req, const BackendStats& s) {
  std::string body = "{\"requests\":" + std::to_string(s.requests) +
                     ",\"connections\":" + std::to_string(s.connections) +
                     ",\"active\":" + std::to_string(s.active) +
                     ",\"max_active\":" + std::to_string(s.max_active) +
                     ",\"max_concurrent\":" + std::to_string(s.max_concurrent) + "}\n";
  return text(req, 200, body, {{"Content-Type", "application/json"}});
}

Reply bytes_reply(const Request& req) {
  uint64_t n = uint_param(req.url, "n").value_or(0);
  bool chunked = query_param(req.url, "chunked") == "1";
  std::string hash = hex64(pattern_hash(n));
  Reply r;
  r.close = !req.keep_alive;
  append_head(r.bytes, req, 200, chunked ? Framing::Chunked : Framing::Length, n, r.close,
              {{"Content-Type", "application/octet-stream"}, {"X-Body-Hash", hash}});
  if (n > kInlineLimit) {
    r.kind = Reply::Kind::Stream;
    r.stream_length = n;
    r.chunked = chunked;
    return r;
  }
  uint64_t pos = 0;
  do {
    pos += append_stream_piece(r.bytes, pos, n - pos, chunked);
  } while (pos < n);
  return r;
}

Reply status_reply(const Request& req) {
  auto code = uint_param(req.url, "code");
  if (!code || *code < 200 || *code > 599) return text(req, 400, "code must be 200..599\n");
  Reply r;
  r.close = !req.keep_alive;
  bool bodiless = *code == 204 || *code == 304;
  append_head(r.bytes, req, static_cast<int>(*code), bodiless ? Framing::None : Framing::Length, 0,
              r.close);
  return r;
}

Reply websocket_reply(const Request& req) {
  if (!req.upgrade || req.websocket_key.empty()) {
    return text(req, 400, "expected a WebSocket upgrade\n");
  }
  Reply r;
  r.kind = Reply::Kind::Upgrade;
  std::string accept = websocket_accept(req.websocket_key);
  r.bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  r.bytes.append("Sec-WebSocket-Accept: ").append(accept) += "\r\n\r\n";
  return r;
}

}  // namespace

void BackendStats::request_started() {
  ++active;
  max_active = std::max(max_active, active);
}

void BackendStats::request_finished() { --active; }

BodyUse body_use(std::string_view url) {
  std::string_view path = path_of(url);
  if (path == "/echo") return BodyUse::Keep;
  if (path == "/hash") return BodyUse::Hash;
  return BodyUse::Ignore;
}

bool counted_in_stats(std::string_view url) {
  std::string_view path = path_of(url);
  return path != "/stats" && path != "/stats/reset";
}

Reply route(const Request& req, BackendStats& stats) {
  std::string_view path = path_of(req.url);
  if (path == "/ws") return websocket_reply(req);
  if (path == "/echo" || path == "/hash") {
    std::string hash = hex64(req.body_hash);
    std::string length = std::to_string(req.body_length);
    HeaderList headers = {{"X-Body-Hash", hash}, {"X-Body-Length", length}};
    return path == "/echo" ? text(req, 200, req.body, headers)
                           : text(req, 200, hash + " " + length + "\n", headers);
  }
  if (path == "/bytes") return bytes_reply(req);
  if (path == "/headers") return text(req, 200, req.head, {{"Content-Type", "text/plain"}});
  if (path == "/status") return status_reply(req);
  if (path == "/sleep") {
    Reply r = text(req, 200, "slept\n", {{"Content-Type", "text/plain"}});
    r.kind = Reply::Kind::AfterDelay;
    r.delay_ms = uint_param(req.url, "ms").value_or(0);
    return r;
  }
  if (path == "/stats") return stats_reply(req, stats);
  if (path == "/stats/reset") {
    // `active` stays: requests in flight will still finish and decrement it.
    stats.requests = stats.connections = 0;
    stats.max_active = stats.active;
    return stats_reply(req, stats);
  }
  if (path == "/close") {
    Reply r;
    r.close = true;
    append_head(r.bytes, req, 200, Framing::Length, 7, true, {{"Content-Type", "text/plain"}});
    r.bytes += "closed\n";
    return r;
  }
  if (path == "/garbage") {
    Reply r;
    r.bytes = "this is not http\r\n\r\n";
    r.close = true;
    return r;
  }
  if (path == "/reset-mid") {
    Reply r;
    r.kind = Reply::Kind::Reset;
    append_head(r.bytes, req, 200, Framing::Length, 1000, false, {{"Content-Type", "text/plain"}});
    r.bytes += "0123456789";
    return r;
  }
  if (path == "/hang-after-headers") {
    Reply r;
    r.kind = Reply::Kind::Hang;
    append_head(r.bytes, req, 200, Framing::Length, 100, false, {{"Content-Type", "text/plain"}});
    return r;
  }
  return text(req, 200, kRootBody, {{"Content-Type", "text/plain"}});
}

std::string bad_request_reply() {
  return "HTTP/1.1 400 Bad Request\r\nServer: sluice-backend\r\nContent-Length: 0\r\n"
         "Connection: close\r\n\r\n";
}

std::string too_large_reply() {
  return "HTTP/1.1 413 Payload Too Large\r\nServer: sluice-backend\r\nContent-Length: 0\r\n"
         "Connection: close\r\n\r\n";
}

uint64_t append_stream_piece(std::string& out, uint64_t pos, uint64_t left, bool chunked) {
  uint64_t take = std::min(kChunk, left);
  if (chunked && take > 0) {
    char size[20];
    auto [end, ec] = std::to_chars(size, size + sizeof size, take, 16);
    out.append(size, end) += "\r\n";
  }
  out.append(std::string_view(pattern_window()).substr(pos % 26, take));
  if (chunked && take > 0) out += "\r\n";
  if (chunked && take == left) out += "0\r\n\r\n";
  return take;
}

}  // namespace sluice::test
