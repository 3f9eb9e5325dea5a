#include "proxy/response_builder.h"

#include <charconv>

#include "proxy/http_util.h"

namespace sluice::proxy {

namespace {

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

bool edits_remove(const config::HeaderEdits* edits, std::string_view name) {
  if (edits == nullptr) return false;
  for (const auto& r : edits->remove) {
    if (iequals(r, name)) return true;
  }
  for (const auto& [n, v] : edits->set) {
    if (iequals(n, name)) return true;  // replaced below
  }
  return false;
}

// Names the upstream listed in its own Connection header are hop-by-hop too.
bool listed_in_connection(const ResponseHead& h, std::string_view name) {
  for (const auto& f : h.headers) {
    if (iequals(h.view(f.name), "connection") && list_has_token(h.view(f.value), name)) {
      return true;
    }
  }
  return false;
}

bool has_header(const ResponseHead& h, std::string_view name) {
  for (const auto& f : h.headers) {
    if (iequals(h.view(f.name), name)) return true;
  }
  return false;
}

}  // namespace

void build_client_head(std::string& out, const ResponseHead& h, const ClientHeadOptions& opts) {
  out.append("HTTP/1.1 ");
  append_number(out, h.status);
  out.push_back(' ');
  std::string_view reason = h.view(h.reason);
  out.append(reason.empty() ? status_reason(h.status) : reason);
  out.append("\r\n");

  const bool upgrade = h.status == 101;
  const bool reframe = opts.framing != ClientFraming::AsIs;
  // Passed on as it is, the head says only the framing sluice read it by: a
  // Transfer-Encoding next to the Content-Length that framed the body (an
  // empty one, which llhttp 8 lets through; found by tests/fuzz/response_fuzz)
  // is dropped, and so is a Content-Length next to chunked (RFC 9112 §6.3:
  // Transfer-Encoding wins). A client never sees both.
  const bool pass_te = !reframe && (h.framing == BodyFraming::Chunked ||
                                    (h.framing == BodyFraming::None && !has_header(h, "content-length")));
  const bool pass_cl = !reframe && h.framing != BodyFraming::Chunked;
  for (const auto& f : h.headers) {
    std::string_view name = h.view(f.name);
    if (upgrade && (iequals(name, "upgrade") || iequals(name, "connection"))) {
      append_header(out, name, h.view(f.value));
      continue;
    }
    if (is_hop_by_hop(name) && !(iequals(name, "transfer-encoding") && pass_te)) continue;
    if (!pass_cl && iequals(name, "content-length")) continue;
    // RFC 9112 §6.1-6.2: a 204 carries neither. A client that believed a
    // Transfer-Encoding there would read what follows as the 204's body
    // (llhttp 8 does; found by tests/fuzz/response_fuzz).
    if (h.status == 204 && (iequals(name, "content-length") || iequals(name, "transfer-encoding")))
      continue;
    if (listed_in_connection(h, name) || edits_remove(opts.edits, name)) continue;
    append_header(out, name, h.view(f.value));
  }
  if (opts.edits != nullptr) {
    for (const auto& [name, value] : opts.edits->set) append_header(out, name, value);
  }
  if (opts.framing == ClientFraming::Chunked) append_header(out, "Transfer-Encoding", "chunked");
  if (!upgrade) {
    if (opts.close) append_header(out, "Connection", "close");
    else if (opts.keep_alive_10) append_header(out, "Connection", "keep-alive");
  }
  out.append("\r\n");
}

void build_local_response(std::string& out, const LocalResponse& r) {
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(r.status));
  out.push_back(' ');
  out.append(status_reason(r.status));
  out.append("\r\n");
  bool has_type = false;
  if (r.headers != nullptr) {
    for (const auto& [name, value] : *r.headers) {
      if (iequals(name, "content-length") || iequals(name, "connection") ||
          iequals(name, "transfer-encoding")) {
        continue;  // framing is ours to say
      }
      has_type = has_type || iequals(name, "content-type");
      append_header(out, name, value);
    }
  }
  if (!has_type && !r.body.empty()) append_header(out, "Content-Type", "text/plain; charset=utf-8");
  if (r.retry_after > 0) {
    out.append("Retry-After: ");
    append_number(out, r.retry_after);
    out.append("\r\n");
  }
  bool bodiless = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  if (!bodiless) {
    out.append("Content-Length: ");
    append_number(out, r.body.size());
    out.append("\r\n");
  }
  if (r.close) append_header(out, "Connection", "close");
  else if (r.keep_alive_10) append_header(out, "Connection", "keep-alive");
  out.append("\r\n");
  if (!bodiless && !r.head_request) out.append(r.body);
}

}  // namespace sluice::proxy
