// How an upstream response is framed for the client: the choice between
// passing the body as it is, re-framing it as chunked, or ending it by
// closing, and the chunk framing itself. Pure functions, so the fuzz target
// and the unit tests run the same rules as ClientConnection.
#pragma once

#include <cstddef>
#include <string_view>

#include "config/config.h"
#include "proxy/response_builder.h"
#include "proxy/response_head.h"

namespace sluice::proxy {

// What the client side knows when the upstream head arrives.
struct ClientSide {
  bool http10 = false;      // the client spoke HTTP/1.0
  bool keep_alive = true;   // the connection may carry another request
  bool upgrade = false;     // the request asked for an upgrade
  const config::HeaderEdits* edits = nullptr;  // the route's response_headers
};

struct ClientResponsePlan {
  ClientHeadOptions head;    // for build_client_head()
  bool chunk = false;        // sluice writes the body as chunks
  bool close_after = false;  // the connection ends after this response
};

ClientResponsePlan plan_client_response(const ResponseHead& h, const ClientSide& client);

// Writes "<hex len>\r\n", the line that opens a chunk; returns its length.
size_t format_chunk_size(char (&out)[24], size_t len);

// The end of a chunked body sluice writes: no trailers.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace sluice::proxy
