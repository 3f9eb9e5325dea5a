#include "proxy/forward_head.h"

#include <charconv>

#include "proxy/http_util.h"

namespace sluice::proxy {

namespace {

// Names whose presence upstream the proxy decides; route edits cannot touch them.
bool proxy_managed(std::string_view name) {
  return is_hop_by_hop(name) || iequals(name, "Content-Length") || iequals(name, "Expect");
}

bool edit_sets(const config::HeaderEdits& edits, std::string_view name) {
  for (const auto& [n, v] : edits.set)
    if (iequals(n, name)) return true;
  return false;
}

bool edit_removes(const config::HeaderEdits& edits, std::string_view name) {
  if (iequals(name, "Host")) return false;  // an HTTP/1.1 request needs one
  for (const auto& n : edits.remove)
    if (iequals(n, name)) return true;
  return false;
}

// Whether the route's edits replace or drop this header.
bool edited(const config::HeaderEdits& edits, std::string_view name) {
  return !edits.empty() && !proxy_managed(name) &&
         (edit_sets(edits, name) || edit_removes(edits, name));
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

void append_target(const TargetParts& target, std::string_view raw_target,
                   std::string_view normalized_path, const config::Rewrite& rewrite,
                   std::string& out) {
  if (target.form == TargetForm::Asterisk) {
    out.append("*");
    return;
  }
  if (rewrite.empty()) {
    if (target.form == TargetForm::Origin) {
      out.append(raw_target);
    } else {  // absolute-form -> origin-form
      out.append(target.path.empty() ? std::string_view("/") : target.path);
      out.append(target.query);
    }
    return;
  }
  // strip_prefix is a plain string prefix, like path_prefix matching:
  // stripping "/api" leaves "/x" of "/api/x", "/" of "/api" (and "/x" of
  // "/apix", which a "/api/" route prefix never lets through).
  std::string_view rest = normalized_path;
  if (!rewrite.strip_prefix.empty() && rest.starts_with(rewrite.strip_prefix))
    rest.remove_prefix(rewrite.strip_prefix.size());
  std::string_view add = rewrite.add_prefix;
  if (!add.empty() && add.front() != '/') out.push_back('/');
  out.append(add);
  // Join with exactly one "/": "/v2" + "/x", "/v2/" + "/x", "/v2" + "x" all give "/v2/x".
  const bool add_slash = !add.empty() && add.back() == '/';
  if (rest.starts_with('/')) {
    out.append(add_slash ? rest.substr(1) : rest);
  } else {
    if (!add_slash) out.push_back('/');
    out.append(rest);
  }
  out.append(target.query);
}

}  // namespace

bool build_forward_head(const RequestHead& head, const TargetParts& target,
                        std::string_view normalized_path, const config::Route& route,
                        std::string& out) {
  ConnectionTokens nominated;
  if (!nominated.collect(head)) return false;
  const config::HeaderEdits& edits = route.request_headers;
  const bool absolute = target.form == TargetForm::Absolute;
  const bool websocket = is_websocket_upgrade(head);

  out.append(head.method_view()).push_back(' ');
  append_target(target, head.target_view(), normalized_path, route.rewrite, out);
  out.append(" HTTP/1.1\r\n");

  // The host the client asked for: the absolute-form authority wins over Host.
  std::string_view client_host = target.authority;
  bool has_host_header = false;
  for (const auto& h : head.headers) {
    if (iequals(head.view(h.name), "Host")) {
      has_host_header = true;
      if (!absolute) client_host = trim_ows(head.view(h.value));
      break;
    }
  }
  if (!has_host_header && !edit_sets(edits, "Host")) append_header(out, "Host", client_host);

  bool client_sent_length = false;
  for (const auto& h : head.headers) {
    const std::string_view name = head.view(h.name);
    const std::string_view value = head.view(h.value);
    if (iequals(name, "Host")) {
      if (!edited(edits, name)) append_header(out, name, absolute ? target.authority : value);
      continue;
    }
    if (iequals(name, "Content-Length")) {
      client_sent_length = true;
      continue;
    }
    if (is_hop_by_hop(name)) {
      if (websocket && iequals(name, "Upgrade")) append_header(out, name, value);
      continue;
    }
    if (iequals(name, "Expect") || iequals(name, "X-Forwarded-For") ||
        iequals(name, "X-Forwarded-Proto") || iequals(name, "X-Forwarded-Host"))
      continue;
    if (nominated.contains(name) || edited(edits, name)) continue;
    append_header(out, name, value);
  }

  if (!edited(edits, "X-Forwarded-For")) {
    const size_t mark = out.size();
    out.append("X-Forwarded-For: ");
    const size_t values = out.size();
    for (const auto& h : head.headers) {
      if (!iequals(head.view(h.name), "X-Forwarded-For")) continue;
      std::string_view v = trim_ows(head.view(h.value));
      if (v.empty()) continue;
      if (out.size() != values) out.append(", ");
      out.append(v);
    }
    if (!head.client_ip.empty()) {
      if (out.size() != values) out.append(", ");
      out.append(head.client_ip);
    }
    if (out.size() == values)
      out.resize(mark);  // nothing to say
    else
      out.append("\r\n");
  }
  if (!edited(edits, "X-Forwarded-Proto"))
    append_header(out, "X-Forwarded-Proto", head.tls ? "https" : "http");
  if (!client_host.empty() && !edited(edits, "X-Forwarded-Host"))
    append_header(out, "X-Forwarded-Host", client_host);

  for (const auto& [name, value] : edits.set)
    if (!proxy_managed(name)) append_header(out, name, value);

  if (websocket) out.append("Connection: Upgrade\r\n");

  if (head.chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (head.has_body || client_sent_length) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, head.has_body ? head.content_length : 0);
    (void)ec;  // 24 digits always fit a uint64_t
    out.append("Content-Length: ").append(digits, end).append("\r\n");
  }
  out.append("\r\n");
  return true;
}

}  // namespace sluice::proxy
