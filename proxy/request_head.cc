#include "proxy/request_head.h"

#include "proxy/http_util.h"

namespace sluice::proxy {

std::string_view RequestHead::header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(view(h.name), name)) return view(h.value);
  return {};
}

// Resets every field, the connection-level ones (client_ip, tls) included:
// a head must never carry a previous client's address into a new request,
// so the loop assigns them again for each request (no allocation: the
// string keeps its capacity).
void RequestHead::clear() {
  buf.clear();
  method = {};
  target = {};
  headers.clear();
  http_major = 1;
  http_minor = 1;
  keep_alive = true;
  upgrade = false;
  has_body = false;
  chunked = false;
  content_length = 0;
  client_ip.clear();
  tls = false;
}

}  // namespace sluice::proxy
