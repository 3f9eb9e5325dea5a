// A parsed request head as a plain value. The loop fills it from llhttp
// callbacks; it then travels to a worker (by move) and back (by move), so
// the connection reuses the same buffers for every request it carries:
// steady-state keep-alive traffic allocates nothing here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proxy {

// A piece of RequestHead::buf. Offsets, not pointers: buf may grow while
// llhttp hands over a head split across several reads.
struct Span {
  uint32_t off = 0;
  uint32_t len = 0;
};

struct HeaderField {
  Span name;
  Span value;
};

struct RequestHead {
  std::string buf;  // method, target and header names/values, back to back
  Span method;
  Span target;      // request-target exactly as received (origin-form, absolute-form, ...)
  std::vector<HeaderField> headers;  // in arrival order, repeats kept
  uint8_t http_major = 1;
  uint8_t http_minor = 1;
  bool keep_alive = true;   // llhttp_should_keep_alive() at headers-complete
  bool upgrade = false;     // an Upgrade the client asked for (llhttp's flag)
  bool has_body = false;    // Content-Length > 0 or chunked
  bool chunked = false;
  uint64_t content_length = 0;  // valid when has_body && !chunked

  // Who asked, for X-Forwarded-For / -Proto / -Host and access logs.
  std::string client_ip;   // "127.0.0.1" or "::1"
  bool tls = false;        // the listener's scheme (always false until TLS exists)

  std::string_view view(Span s) const { return {buf.data() + s.off, s.len}; }
  std::string_view method_view() const { return view(method); }
  std::string_view target_view() const { return view(target); }

  // First value of a header (ASCII case-insensitive name), or empty.
  std::string_view header(std::string_view name) const;

  // Forgets the previous request; keeps every buffer's capacity.
  void clear();
};

}  // namespace sluice::proxy
