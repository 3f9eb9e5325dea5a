// Route matching: which route a request lands on, and the outcomes.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/http_util.h"
#include "proxy/routing.h"
#include "tests/unit/proxy/test_heads.h"

namespace sluice::proxy {
namespace {

using config::PathMatch;
using test::forward_route;
using test::host_match;
using test::make_config;
using test::make_head;
using test::path_match;
using test::route;
using test::routed_to;

RequestHead get(std::string_view target, std::string_view host = "example.com") {
  return make_head("GET", target, {{"Host", host}});
}

TEST_CASE("router: the result carries the job back", "[router]") {
  auto cfg = make_config({forward_route("all")});
  RouteJob job;
  job.conn = 42;
  job.gen = 9;
  job.cfg = cfg;
  job.head = get("/x");
  job.upstream_head.reserve(4096);
  const auto capacity = job.upstream_head.capacity();
  RouteResult r = route_request(std::move(job));
  CHECK(r.conn == 42);
  CHECK(r.gen == 9);
  CHECK(r.cfg == cfg);
  CHECK(r.head.target_view() == "/x");
  CHECK(r.outcome == RouteOutcome::Forward);
  REQUIRE(r.route == &cfg->routes[0]);
  CHECK(r.upstream_head.capacity() == capacity);  // the scratch buffer was reused
}

TEST_CASE("router: an encoded slash cannot route around a path prefix", "[router]") {
  using config::EncodedSlashes;
  auto cfg = make_config({forward_route("admin", path_match(config::PathMatch::Prefix, "/admin/")),
                          forward_route("rest")});
  for (const char* t : {"/admin%2Fusers", "/admin%5cusers", "/admin\\users"}) {
    INFO(t);
    // The default: refused before any route is tried.
    RouteResult r = route(cfg, get(t));
    CHECK(r.outcome == RouteOutcome::BadRequest);
    CHECK(r.route == nullptr);
    // decode: routed as the app that decodes it reads it.
    r = route(cfg, get(t), EncodedSlashes::Decode);
    REQUIRE(r.route != nullptr);
    CHECK(r.route->name == "admin");
    // keep: an ordinary character, so not under "/admin/".
    r = route(cfg, get(t), EncodedSlashes::Keep);
    REQUIRE(r.route != nullptr);
    CHECK(r.route->name == "rest");
  }
  // The target goes upstream as received, even when decoded for routing.
  RouteResult r = route(cfg, get("/admin%2Fusers"), EncodedSlashes::Decode);
  CHECK(r.upstream_head.rfind("GET /admin%2Fusers HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("router: exact host", "[router]") {
  auto cfg = make_config({forward_route("api", host_match("api.example.com")), forward_route("rest")});
  CHECK(routed_to(cfg, get("/", "api.example.com")) == "api");
  CHECK(routed_to(cfg, get("/", "www.api.example.com")) == "rest");
  CHECK(routed_to(cfg, get("/", "example.com")) == "rest");
}

TEST_CASE("router: host matching ignores case", "[router]") {
  auto cfg = make_config({forward_route("api", host_match("api.example.com")), forward_route("rest")});
  CHECK(routed_to(cfg, get("/", "API.Example.COM")) == "api");
}

TEST_CASE("router: host port is stripped for matching", "[router]") {
  auto cfg = make_config({forward_route("api", host_match("api.example.com")),
                          forward_route("v6", host_match("[::1]")), forward_route("rest")});
  CHECK(routed_to(cfg, get("/", "api.example.com:8080")) == "api");
  CHECK(routed_to(cfg, get("/", "api.example.com.")) == "api");
  CHECK(routed_to(cfg, get("/", "[::1]:8080")) == "v6");
}

TEST_CASE("router: wildcard host matches subdomains, not the apex", "[router]") {
  auto cfg = make_config({forward_route("wild", host_match("*.example.com")), forward_route("rest")});
  CHECK(routed_to(cfg, get("/", "a.example.com")) == "wild");
  CHECK(routed_to(cfg, get("/", "a.b.example.com")) == "wild");
  CHECK(routed_to(cfg, get("/", "A.EXAMPLE.com:443")) == "wild");
  CHECK(routed_to(cfg, get("/", "example.com")) == "rest");
  CHECK(routed_to(cfg, get("/", "badexample.com")) == "rest");
  CHECK(routed_to(cfg, get("/", ".example.com")) == "rest");
}

TEST_CASE("router: absolute-form host overrides the Host header", "[router]") {
  auto cfg = make_config({forward_route("api", host_match("api.example.com")), forward_route("rest")});
  CHECK(routed_to(cfg, get("http://api.example.com:80/x", "other.example.com")) == "api");
  CHECK(routed_to(cfg, get("http://other.example.com/x", "api.example.com")) == "rest");
}

TEST_CASE("router: first matching route wins", "[router]") {
  auto cfg = make_config({forward_route("first", path_match(PathMatch::Prefix, "/api/")),
                          forward_route("second", path_match(PathMatch::Prefix, "/api/v2/")),
                          forward_route("last")});
  CHECK(routed_to(cfg, get("/api/v2/x")) == "first");
  CHECK(routed_to(cfg, get("/other")) == "last");
}

TEST_CASE("router: exact path", "[router]") {
  auto cfg = make_config({forward_route("exact", path_match(PathMatch::Exact, "/health"))});
  CHECK(routed_to(cfg, get("/health")) == "exact");
  CHECK(routed_to(cfg, get("/health?verbose=1")) == "exact");
  CHECK(routed_to(cfg, get("/x/../health")) == "exact");
  CHECK(routed_to(cfg, get("/health/")).empty());
  CHECK(routed_to(cfg, get("/healthz")).empty());
  CHECK(routed_to(cfg, get("/Health")).empty());
}

TEST_CASE("router: prefix path", "[router]") {
  auto cfg = make_config({forward_route("api", path_match(PathMatch::Prefix, "/api/"))});
  CHECK(routed_to(cfg, get("/api/")) == "api");
  CHECK(routed_to(cfg, get("/api/users/1")) == "api");
  CHECK(routed_to(cfg, get("/%61pi/users")) == "api");
  CHECK(routed_to(cfg, get("/api")).empty());
  CHECK(routed_to(cfg, get("/apix/")).empty());
  CHECK(routed_to(cfg, get("/api/../secret")).empty());
}

TEST_CASE("router: regex path is an unanchored search", "[router]") {
  auto cfg = make_config({forward_route("img", path_match(PathMatch::Regex, "\\.(png|jpg)$")),
                          forward_route("anchored", path_match(PathMatch::Regex, "^/v[0-9]+/"))});
  CHECK(routed_to(cfg, get("/static/a.png")) == "img");
  CHECK(routed_to(cfg, get("/a.jpg?size=2")) == "img");
  CHECK(routed_to(cfg, get("/v2/users")) == "anchored");
  CHECK(routed_to(cfg, get("/x/v2/users")).empty());
  CHECK(routed_to(cfg, get("/a.png.txt")).empty());
}

TEST_CASE("router: methods match exactly", "[router]") {
  config::RouteMatch m;
  m.methods = {"GET", "HEAD"};
  auto cfg = make_config({forward_route("read", m), forward_route("rest")});
  CHECK(routed_to(cfg, make_head("GET", "/")) == "read");
  CHECK(routed_to(cfg, make_head("HEAD", "/")) == "read");
  CHECK(routed_to(cfg, make_head("POST", "/")) == "rest");
  CHECK(routed_to(cfg, make_head("get", "/")) == "rest");
}

TEST_CASE("router: all listed headers must match exactly", "[router]") {
  config::RouteMatch m;
  m.headers = {{"X-Canary", "yes"}, {"X-Team", "blue"}};
  auto cfg = make_config({forward_route("canary", m), forward_route("rest")});
  CHECK(routed_to(cfg, make_head("GET", "/", {{"Host", "h"}, {"x-team", "blue"}, {"X-CANARY", "yes"}})) ==
        "canary");
  CHECK(routed_to(cfg, make_head("GET", "/", {{"Host", "h"}, {"X-Canary", "yes"}})) == "rest");
  CHECK(routed_to(cfg, make_head("GET", "/", {{"Host", "h"}, {"X-Canary", "YES"}, {"X-Team", "blue"}})) ==
        "rest");
  CHECK(routed_to(cfg, make_head("GET", "/", {{"Host", "h"}, {"X-Canary", "yes2"}, {"X-Team", "blue"}})) ==
        "rest");
  // With repeated lines, any one carrying the value is enough.
  CHECK(routed_to(cfg, make_head("GET", "/", {{"Host", "h"}, {"X-Canary", "no"}, {"X-Canary", "yes"},
                                              {"X-Team", "blue"}})) == "canary");
}

TEST_CASE("router: all conditions of a route must hold", "[router]") {
  config::RouteMatch m = path_match(PathMatch::Prefix, "/admin/");
  m.host = "example.com";
  m.methods = {"POST"};
  auto cfg = make_config({forward_route("admin-post", m), forward_route("rest")});
  CHECK(routed_to(cfg, make_head("POST", "/admin/x")) == "admin-post");
  CHECK(routed_to(cfg, make_head("GET", "/admin/x")) == "rest");
  CHECK(routed_to(cfg, make_head("POST", "/admin/x", {{"Host", "other.com"}})) == "rest");
}

TEST_CASE("router: no matching route is NotFound", "[router]") {
  auto cfg = make_config({forward_route("api", path_match(PathMatch::Prefix, "/api/"))});
  RouteResult r = test::route(cfg, get("/other"));
  CHECK(r.outcome == RouteOutcome::NotFound);
  CHECK(r.route == nullptr);
  CHECK(r.upstream_head.empty());
}

TEST_CASE("router: a respond route gives Respond", "[router]") {
  auto cfg = make_config({test::respond_route("ping", path_match(PathMatch::Exact, "/ping")),
                          forward_route("rest")});
  RouteResult r = test::route(cfg, get("/ping"));
  CHECK(r.outcome == RouteOutcome::Respond);
  REQUIRE(r.route == &cfg->routes[0]);
  REQUIRE(r.route->respond);
  CHECK(r.route->respond->status == 204);
  CHECK(r.upstream_head.empty());
}

TEST_CASE("router: dot-segments cannot escape a prefix route", "[router]") {
  auto cfg = make_config({forward_route("admin", path_match(PathMatch::Prefix, "/admin")),
                          forward_route("public", path_match(PathMatch::Prefix, "/public/"))});
  CHECK(routed_to(cfg, get("/public/../admin")) == "admin");
  CHECK(routed_to(cfg, get("/public/%2e%2e/admin")) == "admin");
  CHECK(routed_to(cfg, get("/public/%2E./admin/users")) == "admin");
  CHECK(routed_to(cfg, get("/public/./x")) == "public");
}

TEST_CASE("router: HTTP/1.1 without Host is BadRequest", "[router]") {
  auto cfg = make_config({forward_route("all")});
  RouteResult r = test::route(cfg, make_head("GET", "/", {{"Accept", "*/*"}}));
  CHECK(r.outcome == RouteOutcome::BadRequest);
  CHECK(r.route == nullptr);
  // Absolute-form does not excuse a missing Host (RFC 9112 3.2).
  CHECK(test::route(cfg, make_head("GET", "http://h/", {})).outcome == RouteOutcome::BadRequest);
}

TEST_CASE("router: HTTP/1.0 without Host matches host-less routes only", "[router]") {
  auto cfg = make_config({forward_route("named", host_match("example.com")), forward_route("any")});
  auto head = make_head("GET", "/", {});
  head.http_minor = 0;
  RouteResult r = test::route(cfg, std::move(head));
  CHECK(r.outcome == RouteOutcome::Forward);
  REQUIRE(r.route);
  CHECK(r.route->name == "any");
}

TEST_CASE("router: two Host headers are BadRequest", "[router]") {
  auto cfg = make_config({forward_route("all")});
  auto head = make_head("GET", "/", {{"Host", "a.example.com"}, {"Host", "b.example.com"}});
  CHECK(test::route(cfg, std::move(head)).outcome == RouteOutcome::BadRequest);
  auto same = make_head("GET", "/", {{"Host", "a.example.com"}, {"host", "a.example.com"}});
  CHECK(test::route(cfg, std::move(same)).outcome == RouteOutcome::BadRequest);
}

TEST_CASE("router: an invalid Host is BadRequest", "[router]") {
  auto cfg = make_config({forward_route("all")});
  for (const char* host : {"user@example.com", "example.com:http", "exa mple.com", "[::1"}) {
    INFO(host);
    CHECK(test::route(cfg, make_head("GET", "/", {{"Host", host}})).outcome == RouteOutcome::BadRequest);
  }
}

TEST_CASE("router: a bad target is BadRequest", "[router]") {
  auto cfg = make_config({forward_route("all")});
  for (const char* target : {"/a%zz", "/a%4", "relative", "example.com:443", "ftp://h/x", "/a#b"}) {
    INFO(target);
    CHECK(test::route(cfg, get(target)).outcome == RouteOutcome::BadRequest);
  }
}

TEST_CASE("router: too many Connection options is BadRequest", "[router]") {
  auto cfg = make_config({forward_route("all")});
  std::string many;
  for (size_t i = 0; i <= ConnectionTokens::kMax; ++i) many += "X-" + std::to_string(i) + ",";
  RouteResult r = test::route(cfg, make_head("GET", "/", {{"Host", "h"}, {"Connection", many}}));
  CHECK(r.outcome == RouteOutcome::BadRequest);
  CHECK(r.route == nullptr);
  CHECK(r.upstream_head.empty());
  // Repeats of one name count once.
  std::string repeats;
  for (int i = 0; i < 1000; ++i) repeats += "close, ";
  CHECK(test::route(cfg, make_head("GET", "/", {{"Host", "h"}, {"Connection", repeats}})).outcome ==
        RouteOutcome::Forward);
}

TEST_CASE("router: the asterisk is for OPTIONS only", "[router]") {
  auto cfg = make_config({forward_route("all")});
  CHECK(test::route(cfg, make_head("OPTIONS", "*")).outcome == RouteOutcome::Forward);
  CHECK(test::route(cfg, make_head("GET", "*")).outcome == RouteOutcome::BadRequest);
}

}  // namespace
}  // namespace sluice::proxy
