// route_request(): target and Host checks, route matching in file order,
// then the upstream head for a forwarded request (proxy/forward_head.cc).
#include <re2/re2.h>

#include <optional>
#include <string>
#include <string_view>

#include "proxy/forward_head.h"
#include "proxy/http_util.h"
#include "proxy/path.h"
#include "proxy/routing.h"

namespace sluice::proxy {

namespace {

// "" matches any host; "*.example.com" matches "a.example.com" and
// "a.b.example.com" but not "example.com"; anything else matches exactly.
// Patterns are lowercased by the loader; hosts are compared ignoring case.
bool host_matches(std::string_view pattern, std::string_view host) {
  if (pattern.empty()) return true;
  if (pattern.starts_with("*.")) {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && iends_with(host, suffix);
  }
  return iequals(pattern, host);
}

bool path_matches(const config::RouteMatch& m, std::string_view path) {
  switch (m.path_kind) {
    case config::PathMatch::Any: return true;
    case config::PathMatch::Exact: return path == m.path;
    case config::PathMatch::Prefix: return path.starts_with(m.path);
    case config::PathMatch::Regex:
      // Unanchored search, like nginx's "location ~": a pattern that must
      // cover the whole path anchors itself with ^ and $.
      return m.path_regex && re2::RE2::PartialMatch(re2::StringPiece(path.data(), path.size()),
                                                    *m.path_regex);
  }
  return false;
}

bool method_matches(const config::RouteMatch& m, std::string_view method) {
  if (m.methods.empty()) return true;
  for (const auto& allowed : m.methods)
    if (allowed == method) return true;  // method names are case-sensitive
  return false;
}

// Every listed header must be present with exactly that value (OWS around
// the value ignored); with repeated lines of a name, any one of them may match.
bool headers_match(const config::RouteMatch& m, const RequestHead& head) {
  for (const auto& [name, value] : m.headers) {
    bool found = false;
    for (const auto& h : head.headers) {
      if (iequals(head.view(h.name), name) && trim_ows(head.view(h.value)) == value) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

bool route_matches(const config::RouteMatch& m, const RequestHead& head, std::string_view host,
                   std::string_view path) {
  return host_matches(m.host, host) && path_matches(m, path) &&
         method_matches(m, head.method_view()) && headers_match(m, head);
}

// The host to match routes on, without port; nullopt when the request must
// be refused (RFC 9112 §3.2: a 1.1 request without Host, more than one
// Host, or an invalid Host are answered 400).
std::optional<std::string_view> effective_host(const RequestHead& head, const TargetParts& target) {
  std::optional<std::string_view> host_header;
  for (const auto& h : head.headers) {
    if (!iequals(head.view(h.name), "Host")) continue;
    if (host_header) return std::nullopt;  // a second Host
    host_header = trim_ows(head.view(h.value));
  }
  const bool http11 = head.http_major > 1 || (head.http_major == 1 && head.http_minor >= 1);
  if (!host_header && http11) return std::nullopt;
  std::optional<std::string_view> host_name;
  if (host_header) {
    host_name = host_without_port(*host_header);
    if (!host_name) return std::nullopt;
  }
  // An absolute-form target overrides Host (RFC 9112 §3.2.2); parse_target
  // has validated its authority.
  if (target.form == TargetForm::Absolute) return host_without_port(target.authority);
  return host_name.value_or(std::string_view{});
}

// The normalised path lives in a per-thread buffer (each worker's, and the
// loop's): no allocation once warm.
thread_local std::string path_scratch;

RouteOutcome route(RouteResult& r, config::EncodedSlashes slashes) {
  const RequestHead& head = r.head;
  auto target = parse_target(head.target_view());
  if (!target) return RouteOutcome::BadRequest;

  std::string& path = path_scratch;
  path.clear();
  if (target->form == TargetForm::Asterisk) {
    if (head.method_view() != "OPTIONS") return RouteOutcome::BadRequest;
    path.push_back('*');  // not path = "*": GCC 12 -O2 false -Wrestrict (PR 105329)
  } else if (!normalize_path_into(target->path, path, slashes)) {
    return RouteOutcome::BadRequest;
  }

  auto host = effective_host(head, *target);
  if (!host) return RouteOutcome::BadRequest;
  if (!r.cfg) return RouteOutcome::NotFound;

  for (const auto& candidate : r.cfg->routes) {
    if (!route_matches(candidate.match, head, *host, path)) continue;
    if (candidate.respond) {
      r.route = &candidate;
      return RouteOutcome::Respond;
    }
    if (!build_forward_head(head, *target, path, candidate, r.upstream_head)) {
      r.upstream_head.clear();
      return RouteOutcome::BadRequest;
    }
    r.route = &candidate;
    return RouteOutcome::Forward;
  }
  return RouteOutcome::NotFound;
}

}  // namespace

void warm_routing_thread() {
  // The default limit on a head (limits.max_header_bytes) bounds its path;
  // a listener that allows longer heads may grow it once.
  path_scratch.reserve(16 * 1024);
}

RouteResult route_request(RouteJob&& job) {
  RouteResult r;
  r.conn = job.conn;
  r.gen = job.gen;
  r.cfg = std::move(job.cfg);
  r.head = std::move(job.head);
  r.upstream_head = std::move(job.upstream_head);
  r.upstream_head.clear();  // keeps its capacity
  r.outcome = route(r, job.slashes);
  return r;
}

}  // namespace sluice::proxy
