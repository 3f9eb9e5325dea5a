// Builders for the proxy unit tests: request heads as the loop would fill
// them from llhttp, and configs built in code (no YAML involved).
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/request_head.h"
#include "proxy/routing.h"

namespace sluice::proxy::test {

using Headers = std::vector<std::pair<std::string_view, std::string_view>>;

inline Span append_span(std::string& buf, std::string_view s) {
  Span span{static_cast<uint32_t>(buf.size()), static_cast<uint32_t>(s.size())};
  buf.append(s);
  return span;
}

inline RequestHead make_head(std::string_view method, std::string_view target,
                             const Headers& headers = {{"Host", "example.com"}}) {
  RequestHead head;
  head.method = append_span(head.buf, method);
  head.target = append_span(head.buf, target);
  for (const auto& [name, value] : headers) {
    HeaderField field;
    field.name = append_span(head.buf, name);
    field.value = append_span(head.buf, value);
    head.headers.push_back(field);
  }
  head.client_ip = "192.0.2.7";
  return head;
}

inline config::Route forward_route(std::string name, config::RouteMatch match = {}) {
  config::Route route;
  route.name = std::move(name);
  route.match = std::move(match);
  route.upstream = 0;
  return route;
}

inline config::Route respond_route(std::string name, config::RouteMatch match = {}) {
  config::Route route;
  route.name = std::move(name);
  route.match = std::move(match);
  route.respond = config::Respond{.status = 204, .body = "", .headers = {}};
  return route;
}

inline config::RouteMatch host_match(std::string host) {
  config::RouteMatch m;
  m.host = std::move(host);
  return m;
}

inline config::RouteMatch path_match(config::PathMatch kind, std::string path) {
  config::RouteMatch m;
  m.path_kind = kind;
  m.path = path;
  if (kind == config::PathMatch::Regex) m.path_regex = std::make_shared<const re2::RE2>(path);
  return m;
}

inline config::ConfigPtr make_config(std::vector<config::Route> routes) {
  auto cfg = std::make_shared<config::Config>();
  cfg->source = "test";
  cfg->workers = 1;
  config::Upstream app;
  app.name = "app";
  cfg->upstreams.push_back(std::move(app));
  cfg->routes = std::move(routes);
  return cfg;
}

inline RouteResult route(const config::ConfigPtr& cfg, RequestHead head,
                         config::EncodedSlashes slashes = config::EncodedSlashes::Reject) {
  RouteJob job;
  job.conn = 7;
  job.gen = 3;
  job.cfg = cfg;
  job.head = std::move(head);
  job.slashes = slashes;
  return route_request(std::move(job));
}

// The name of the route a request lands on; "" when none.
inline std::string routed_to(const config::ConfigPtr& cfg, RequestHead head) {
  RouteResult r = route(cfg, std::move(head));
  return r.route ? r.route->name : std::string();
}

}  // namespace sluice::proxy::test
