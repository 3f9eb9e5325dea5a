// Routing: match conditions, first match wins, respond routes, 404, path
// normalisation against traversal, rewrites and header edits.
#include <catch2/catch.hpp>

#include "tests/integration/proxy_fixture.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

const char* kRoutes = R"(workers: 2
listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: admin
    match: { path_prefix: "/admin" }
    respond: { status: 403, body: "forbidden\n" }
  - name: api-host
    match: { host: "api.example.com", path_exact: "/which" }
    respond: { status: 200, body: "api-exact\n" }
  - name: wildcard-host
    match: { host: "*.example.com", path_exact: "/which" }
    respond: { status: 200, body: "wildcard\n" }
  - name: exact
    match: { path_exact: "/exact" }
    respond: { status: 202, body: "exact\n", headers: { X-Route: exact, Content-Type: text/x-exact } }
  - name: regex
    match: { path_regex: "^/reports/[0-9]+$" }
    respond: { status: 201, body: "report\n" }
  - name: methods
    match: { path_exact: "/m", methods: [POST, PUT] }
    respond: { status: 200, body: "post-or-put\n" }
  - name: canary
    match: { path_exact: "/h", headers: { X-Canary: "1" } }
    respond: { status: 200, body: "canary\n" }
  - name: first
    match: { path_prefix: "/order/" }
    respond: { status: 200, body: "first\n" }
  - name: second
    match: { path_prefix: "/order/x" }
    respond: { status: 200, body: "second\n" }
  - name: api
    match: { path_prefix: "/api/" }
    upstream: app
    rewrite: { strip_prefix: "/api" }
    request_headers: { set: { X-Env: prod }, remove: [X-Debug] }
    response_headers: { set: { X-Served-By: sluice }, remove: [Server] }
  - name: public
    match: { path_prefix: "/public/" }
    upstream: app
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{B0}" }
logging: { level: info, access_log: { path: "off" } }
)";

HttpResponse get_host(uint16_t port, std::string_view target, std::string host,
                      Headers extra = {}) {
  extra.emplace_back("Host", std::move(host));
  return request(port, "GET", target, extra);
}

}  // namespace

TEST_CASE("routes match on host, path, method and headers; first match wins", "[routing]") {
  ProxyFixture f(kRoutes);
  const uint16_t p = f.port();

  SECTION("host: exact, case-insensitive, port ignored") {
    CHECK(get_host(p, "/which", "api.example.com").body == "api-exact\n");
    CHECK(get_host(p, "/which", "API.Example.COM:8080").body == "api-exact\n");
  }
  SECTION("host: *.suffix matches subdomains, not the bare domain") {
    CHECK(get_host(p, "/which", "www.example.com").body == "wildcard\n");
    CHECK(get_host(p, "/which", "a.b.example.com").body == "wildcard\n");
    CHECK(get_host(p, "/which", "example.com").status == 404);
    CHECK(get_host(p, "/which", "example.org").status == 404);
    CHECK(get_host(p, "/which", "notexample.com").status == 404);
  }
  SECTION("path_exact") {
    HttpResponse r = get(p, "/exact");
    CHECK(r.status == 202);
    CHECK(r.body == "exact\n");
    CHECK(get(p, "/exact/").status == 404);
    CHECK(get(p, "/exactly").status == 404);
    CHECK(get(p, "/exact?q=1").status == 202);  // the query is not part of the path
  }
  SECTION("path_prefix") {
    CHECK(get(p, "/order/abc").body == "first\n");
    CHECK(get(p, "/order").status == 404);
  }
  SECTION("path_regex") {
    CHECK(get(p, "/reports/42").status == 201);
    CHECK(get(p, "/reports/42/pdf").status == 404);
    CHECK(get(p, "/reports/x").status == 404);
  }
  SECTION("methods") {
    CHECK(request(p, "POST", "/m").body == "post-or-put\n");
    CHECK(request(p, "PUT", "/m").body == "post-or-put\n");
    CHECK(request(p, "GET", "/m").status == 404);
    CHECK(request(p, "DELETE", "/m").status == 404);
  }
  SECTION("headers") {
    CHECK(get(p, "/h", {{"X-Canary", "1"}}).body == "canary\n");
    CHECK(get(p, "/h", {{"x-canary", "1"}}).body == "canary\n");
    CHECK(get(p, "/h", {{"X-Canary", "2"}}).status == 404);
    CHECK(get(p, "/h").status == 404);
  }
  SECTION("first match wins") {
    // Both "first" (/order/) and "second" (/order/x) match: file order decides.
    CHECK(get(p, "/order/xyz").body == "first\n");
  }
  SECTION("respond routes give their status, body and headers") {
    HttpResponse r = get(p, "/exact");
    CHECK(r.status == 202);
    CHECK(r.body == "exact\n");
    CHECK(r.header("X-Route") == "exact");
    CHECK(r.header("Content-Type") == "text/x-exact");
    CHECK(r.header("Content-Length") == "6");
  }
  SECTION("no match is 404") {
    HttpResponse r = get(p, "/nothing/here");
    CHECK(r.status == 404);
    CHECK(f.backend().stats().requests == 0);
  }
}

TEST_CASE("dot-segments cannot bypass a route", "[routing]") {
  ProxyFixture f(kRoutes);
  const uint16_t p = f.port();
  f.backend().reset_stats();

  // Sanity: the /public/ route does reach the backend.
  HttpResponse pub = get(p, "/public/file");
  REQUIRE(pub.status == 200);
  CHECK(pub.body.size() == 100);
  CHECK(f.backend().stats().requests == 1);

  for (const char* target :
       {"/admin", "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin",
        "/public/./.%2e/admin/x", "/public/a/../../admin"}) {
    HttpResponse r = get(p, target);
    INFO(target << ": " << r.error);
    CHECK(r.status == 403);
    CHECK(r.body == "forbidden\n");
  }
  CHECK(f.backend().stats().requests == 1);
}

// An app that decodes "%2F" or "%5C", or reads "\" as "/" (IIS), would
// see "/public/..%2Fadmin" as "/admin": by default such paths are refused
// with 400 and reach no app; with encoded_slashes: decode they are routed
// as that app reads them, so the admin route still answers.
TEST_CASE("encoded slashes cannot bypass a route", "[routing]") {
  const char* targets[] = {"/public/..%2Fadmin", "/public/..%2fadmin", "/public/..%5Cadmin",
                           "/public\\..\\admin"};
  SECTION("reject, the default: 400 and closed") {
    ProxyFixture f(kRoutes);
    f.backend().reset_stats();
    for (const char* target : targets) {
      HttpResponse r = get(f.port(), target);
      INFO(target << ": " << r.error);
      CHECK(r.status == 400);
      CHECK_FALSE(r.keep_alive);
    }
    CHECK(f.backend().stats().requests == 0);
    // Queries are not paths: "%2F" there is the app's business.
    CHECK(get(f.port(), "/public/x?next=%2Fadmin").status == 200);
  }
  SECTION("decode: routed as a separator") {
    std::string yaml = kRoutes;
    yaml.replace(yaml.find("    listen: \"127.0.0.1:0\"\n"), 0, "    encoded_slashes: decode\n");
    ProxyFixture f(yaml);
    f.backend().reset_stats();
    for (const char* target : targets) {
      HttpResponse r = get(f.port(), target);
      INFO(target << ": " << r.error);
      CHECK(r.status == 403);
    }
    CHECK(f.backend().stats().requests == 0);
  }
}

TEST_CASE("rewrite and header edits are applied", "[routing]") {
  ProxyFixture f(kRoutes);
  const uint16_t p = f.port();

  SECTION("strip_prefix: the backend sees the path without it, query intact") {
    HttpResponse r = get(p, "/api/headers?x=1&y=%2F");
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(head_lines(r.body).at(0) == "GET /headers?x=1&y=%2F HTTP/1.1");
  }
  SECTION("request_headers: set replaces the client's value, remove drops") {
    HttpResponse r = get(p, "/api/headers", {{"X-Env", "dev"}, {"X-Debug", "yes"}, {"X-Keep", "k"}});
    REQUIRE(r.status == 200);
    INFO(r.body);
    CHECK(head_values(r.body, "X-Env") == std::vector<std::string>{"prod"});
    CHECK_FALSE(head_has(r.body, "X-Debug"));
    CHECK(head_values(r.body, "X-Keep") == std::vector<std::string>{"k"});
  }
  SECTION("response_headers: set and remove as seen by the client") {
    HttpResponse r = get(p, "/api/headers");
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Served-By") == "sluice");
    CHECK(r.header_count("X-Served-By") == 1);
    CHECK(r.header_count("Server") == 0);
    // A route without edits passes the backend's Server header through.
    HttpResponse plain = get(p, "/public/headers");
    REQUIRE(plain.status == 200);
    CHECK(plain.header("Server") == "sluice-backend");
    CHECK_FALSE(plain.header("X-Served-By").has_value());
  }
}

TEST_CASE("add_prefix and strip_prefix together, as the upstream sees them", "[routing]") {
  // The backend answers /headers only, so a path with a prefix added cannot
  // be echoed by it; a scripted upstream records the request line instead.
  ScriptedUpstream up([](ScriptedUpstream& self, int fd) {
    for (;;) {
      std::string head = self.read_request(fd, 5s);
      if (head.empty()) return;
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(head.size()) +
                         "\r\n\r\n" + head;
      if (!send_all(fd, resp, 5s)) return;
    }
  });
  ProxyFixture f(R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: both
    match: { path_prefix: "/svc/" }
    upstream: app
    rewrite: { strip_prefix: "/svc", add_prefix: "/v1" }
  - name: add
    match: { path_prefix: "/x/" }
    upstream: app
    rewrite: { add_prefix: "/v2" }
upstreams:
  app:
    servers:
      - { address: "127.0.0.1:{S0}" }
logging: { level: info, access_log: { path: "off" } }
)",
                 Setup{.backends = 0, .backend_args = {}}, {up.port()});
  HttpResponse r1 = get(f.port(), "/svc/users?id=7");
  INFO(r1.error);
  REQUIRE(r1.status == 200);
  CHECK(head_lines(r1.body).at(0) == "GET /v1/users?id=7 HTTP/1.1");
  HttpResponse r2 = get(f.port(), "/x/y/z");
  REQUIRE(r2.status == 200);
  CHECK(head_lines(r2.body).at(0) == "GET /v2/x/y/z HTTP/1.1");
}
