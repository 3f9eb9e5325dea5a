// An upstream response head, filled by the upstream connection's parser.
// Lives inside that connection and is reused for every response on it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/request_head.h"

namespace sluice::proxy {

enum class BodyFraming : uint8_t {
  None,           // HEAD, 1xx, 204, 304, or Content-Length: 0
  Length,         // Content-Length: content_length
  Chunked,        // Transfer-Encoding: chunked (decoded by the parser)
  UntilClose,     // no framing: the body ends when the server closes
};

struct ResponseHead {
  std::string buf;  // reason phrase and header names/values
  Span reason;
  std::vector<HeaderField> headers;
  uint16_t status = 0;
  uint8_t http_major = 1;
  uint8_t http_minor = 1;
  bool keep_alive = true;  // the server will keep the connection open
  BodyFraming framing = BodyFraming::None;
  uint64_t content_length = 0;

  std::string_view view(Span s) const { return {buf.data() + s.off, s.len}; }
  void clear() {
    buf.clear();
    reason = {};
    headers.clear();
    status = 0;
    keep_alive = true;
    framing = BodyFraming::None;
    content_length = 0;
  }
};

}  // namespace sluice::proxy
