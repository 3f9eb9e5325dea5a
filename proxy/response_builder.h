// Serialises what the client receives: the upstream's response head after
// the hop-by-hop rules and the route's edits, and sluice's own responses
// (respond routes, errors). Loop thread; appends into a reused string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/response_head.h"

namespace sluice::proxy {

// How the body reaches the client.
enum class ClientFraming : uint8_t {
  AsIs,     // no body, or Content-Length passed through
  Chunked,  // sluice writes chunked framing (upstream chunked or until-close)
  Close,    // body ends when sluice closes (HTTP/1.0 client, unknown length)
};

struct ClientHeadOptions {
  ClientFraming framing = ClientFraming::AsIs;
  bool close = false;        // "Connection: close"; the connection ends after this
  bool keep_alive_10 = false;  // HTTP/1.0 client kept alive: say so explicitly
  const config::HeaderEdits* edits = nullptr;
};

void build_client_head(std::string& out, const ResponseHead& h, const ClientHeadOptions& opts);

struct LocalResponse {
  int status = 200;
  std::string_view body;
  const config::HeaderList* headers = nullptr;  // respond-route headers
  bool close = false;
  bool keep_alive_10 = false;
  bool head_request = false;  // HEAD: headers as for GET, no body bytes
  uint32_t retry_after = 0;   // seconds; 0 = no Retry-After
};

// Head and body in one string, ready for one write.
void build_local_response(std::string& out, const LocalResponse& r);

}  // namespace sluice::proxy
