// The test backend's endpoints, as pure functions from a parsed request to a
// reply. The connection code (backend_conn.h) owns the sockets and carries
// out what a Reply asks for; nothing here touches libuv.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::test {

// Counters behind /stats. Requests to /stats and /stats/reset themselves are
// not counted, so polling them does not disturb what a test measures.
struct BackendStats {
  uint64_t requests = 0;        // requests answered
  uint64_t connections = 0;     // TCP connections accepted
  uint64_t active = 0;          // requests whose head has arrived and reply not yet finished
  uint64_t max_active = 0;      // highest `active` seen
  uint64_t max_concurrent = 0;  // --max-concurrent, reported only

  void request_started();
  void request_finished();
};

// One complete request, as the connection collected it.
struct Request {
  std::string_view method;
  std::string url;         // the request target as sent
  std::string head;        // raw request line and headers, final CRLF included
  std::string body;        // kept only when body_use(url) == BodyUse::Keep
  uint64_t body_hash = 0;  // body_hash() of the body (BodyUse::Hash or Keep)
  uint64_t body_length = 0;
  std::string websocket_key;  // Sec-WebSocket-Key, if sent
  bool upgrade = false;       // Upgrade (or CONNECT) requested
  bool keep_alive = true;
  int http_minor = 1;
};

// What to do with a request body, decided once the head is complete.
enum class BodyUse : uint8_t { Ignore, Hash, Keep };
BodyUse body_use(std::string_view url);

// Whether a request to `url` counts in BackendStats.
bool counted_in_stats(std::string_view url);

// The largest body /echo buffers; beyond it the connection answers 413.
inline constexpr uint64_t kMaxEchoBody = 64ull << 20;

struct Reply {
  enum class Kind : uint8_t {
    Now,         // send `bytes`
    AfterDelay,  // send `bytes` after `delay_ms`
    Stream,      // send `bytes` (the head), then `stream_length` pattern bytes
    Upgrade,     // send `bytes` (a 101), then echo every byte received
    Hang,        // send `bytes`, then nothing until the peer closes
    Reset,       // send `bytes`, then close with a TCP reset
  };
  Kind kind = Kind::Now;
  std::string bytes;
  bool close = false;  // close once everything is sent (Now, AfterDelay, Stream)
  uint64_t delay_ms = 0;
  uint64_t stream_length = 0;
  bool chunked = false;  // Stream: Transfer-Encoding: chunked, 64 KiB chunks
};

Reply route(const Request& req, BackendStats& stats);

// A complete "400 Bad Request" with Connection: close, for unparsable input.
std::string bad_request_reply();

// A complete "413 Payload Too Large" with Connection: close.
std::string too_large_reply();

// Appends the next piece of a Stream body: `pos` bytes of the pattern were
// already sent and `left` remain; appends at most one 64 KiB chunk (framed
// if `chunked`, plus the last-chunk marker once `left` reaches 0) and
// returns how many pattern bytes it added.
uint64_t append_stream_piece(std::string& out, uint64_t pos, uint64_t left, bool chunked);

}  // namespace sluice::test
