// Loading valid files: defaults, conversions and the effective-value dump.
#include <re2/re2.h>

#include <algorithm>
#include <thread>

#include "config/dump.h"
#include "config_test_support.h"

using namespace sluice::config;
using namespace sluice::config::test;
using namespace std::chrono_literals;

TEST_CASE("a minimal config gets every default") {
  ConfigPtr config = load_ok(kMinimalYaml);
  CHECK(config->source == "sluice.yaml");
  CHECK(config->workers == std::clamp(std::thread::hardware_concurrency(), 1u, 256u));

  REQUIRE(config->listeners.size() == 1);
  const Listener& web = config->listeners[0];
  CHECK(web.name == "web");
  CHECK(web.listen.text == "127.0.0.1:8080");
  CHECK(web.listen.port == 8080);
  CHECK(web.max_connections == 10000);
  CHECK(web.encoded_slashes == EncodedSlashes::Reject);
  CHECK(web.timeouts.header == 10s);
  CHECK(web.timeouts.body == 60s);
  CHECK(web.timeouts.idle == 75s);
  CHECK(web.timeouts.send == 60s);
  CHECK(web.limits.max_header_bytes == 16 * KiB);
  CHECK(web.limits.max_body_bytes == 10 * MiB);

  CHECK(config->routes.empty());
  CHECK(config->upstreams.empty());
  CHECK_FALSE(config->admin.listen.has_value());
  CHECK(config->logging.level == LogLevel::Info);
  CHECK(config->logging.access_log.path == "stdout");
  CHECK(config->logging.access_log.format == AccessLogFormat::Combined);
}

TEST_CASE("an upstream with one server gets every default, health checks off") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "upstreams:\n"
                             "  app:\n"
                             "    servers: [{ address: \"127.0.0.1:5001\" }]\n");
  const Upstream* app = config->find_upstream("app");
  REQUIRE(app != nullptr);
  CHECK(config->find_upstream("other") == nullptr);
  REQUIRE(app->servers.size() == 1);
  CHECK(app->servers[0].weight == 1);
  CHECK(app->servers[0].max_concurrent == 0);
  CHECK(app->balance == Balance::RoundRobin);
  CHECK(app->queue.max_length == 1000);
  CHECK(app->queue.timeout == 5s);
  CHECK(app->keepalive.max_idle == 32);
  CHECK(app->keepalive.idle_timeout == 60s);
  CHECK(app->timeouts.connect == 2s);
  CHECK(app->timeouts.response == 30s);
  CHECK(app->retries.attempts == 1);
  CHECK_FALSE(app->health_check.has_value());
}

TEST_CASE("an empty health_check turns checks on with the defaults") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "upstreams:\n"
                             "  app:\n"
                             "    servers: [{ address: \"127.0.0.1:5001\" }]\n"
                             "    health_check: {}\n");
  const auto& check = config->upstreams.at(0).health_check;
  REQUIRE(check.has_value());
  CHECK(check->path == "/health");
  CHECK(check->interval == 2s);
  CHECK(check->timeout == 1s);
  CHECK(check->healthy_after == 2);
  CHECK(check->unhealthy_after == 3);
}

TEST_CASE("a route without match matches anything and respond defaults to an empty 200") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "routes:\n"
                             "  - name: all\n"
                             "    respond: {}\n");
  const Route& all = config->routes.at(0);
  CHECK(all.match.path_kind == PathMatch::Any);
  CHECK(all.match.host.empty());
  CHECK(all.match.methods.empty());
  CHECK_FALSE(all.upstream.has_value());
  REQUIRE(all.respond.has_value());
  CHECK(all.respond->status == 200);
  CHECK(all.respond->body.empty());
  CHECK(all.respond->headers.empty());
}

TEST_CASE("routes keep their conditions, resolved upstream and edits") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "routes:\n"
                             "  - name: api\n"
                             "    match:\n"
                             "      host: API.Example.com\n"
                             "      path_prefix: /api/\n"
                             "      methods: [GET, POST]\n"
                             "      headers: { X-Canary: 1 }\n"
                             "    upstream: b\n"
                             "    rewrite: { strip_prefix: /api, add_prefix: /v1 }\n"
                             "    request_headers: { set: { X-Env: prod }, remove: [X-Debug] }\n"
                             "    response_headers: { remove: [Server] }\n"
                             "  - name: reports\n"
                             "    match: { host: \"*.example.com\", path_regex: \"/reports/[0-9]+\" }\n"
                             "    upstream: a\n"
                             "upstreams:\n"
                             "  a: { servers: [{ address: \"127.0.0.1:5001\" }] }\n"
                             "  b: { servers: [{ address: \"127.0.0.1:5002\" }] }\n");
  const Route& api = config->routes.at(0);
  CHECK(api.match.host == "api.example.com");  // lowercased
  CHECK(api.match.path_kind == PathMatch::Prefix);
  CHECK(api.match.path == "/api/");
  CHECK(api.match.methods == std::vector<std::string>{"GET", "POST"});
  CHECK(api.match.headers == HeaderList{{"X-Canary", "1"}});
  CHECK(api.upstream == std::optional<size_t>(1));
  CHECK(api.rewrite.strip_prefix == "/api");
  CHECK(api.rewrite.add_prefix == "/v1");
  CHECK(api.request_headers.set == HeaderList{{"X-Env", "prod"}});
  CHECK(api.request_headers.remove == std::vector<std::string>{"X-Debug"});
  CHECK(api.response_headers.set.empty());
  CHECK(api.response_headers.remove == std::vector<std::string>{"Server"});

  const Route& reports = config->routes.at(1);
  CHECK(reports.match.host == "*.example.com");
  CHECK(reports.match.path_kind == PathMatch::Regex);
  REQUIRE(reports.match.path_regex != nullptr);
  CHECK(reports.match.path_regex->pattern() == "/reports/[0-9]+");
  CHECK(RE2::PartialMatch("/reports/42", *reports.match.path_regex));
  CHECK(reports.upstream == std::optional<size_t>(0));
}

TEST_CASE("sections left empty count as empty mappings") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "admin:\n"
                             "logging:\n");
  CHECK_FALSE(config->admin.listen.has_value());
  CHECK(config->logging.level == LogLevel::Info);
}

TEST_CASE("flatten lists every effective value of a minimal config") {
  ConfigPtr config = load_ok("workers: 2\n" + std::string(kMinimalYaml));
  std::vector<std::pair<std::string, std::string>> expected{
      {"workers", "2"},
      {"io_threads", "1"},
      {"busy_poll_us", "0"},
      {"route_on_loop_us", "200"},
      {"drain_timeout", "30s"},
      {"listeners[0].name", "web"},
      {"listeners[0].listen", "127.0.0.1:8080"},
      {"listeners[0].max_connections", "10000"},
      {"listeners[0].max_connections_per_ip", "0"},
      {"listeners[0].encoded_slashes", "reject"},
      {"listeners[0].timeouts.header", "10s"},
      {"listeners[0].timeouts.body", "1m"},
      {"listeners[0].timeouts.idle", "75s"},
      {"listeners[0].timeouts.send", "1m"},
      {"listeners[0].limits.max_header_bytes", "16KiB"},
      {"listeners[0].limits.max_body_bytes", "10MiB"},
      {"logging.level", "info"},
      {"logging.access_log.path", "stdout"},
      {"logging.access_log.format", "combined"},
      {"buffering.request_memory", "64KiB"},
      {"buffering.response_memory", "256KiB"},
      {"buffering.temp_dir", "/var/tmp"},
      {"buffering.max_response_file", "1GiB"},
  };
  CHECK(flatten(*config) == expected);
}

TEST_CASE("flatten spells routes and upstreams as they would be written") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "routes:\n"
                             "  - name: app\n"
                             "    match: { path_prefix: /app/, methods: [GET] }\n"
                             "    upstream: legacy\n"
                             "  - name: health\n"
                             "    respond: { body: \"ok\\n\", headers: { Content-Type: text/plain } }\n"
                             "upstreams:\n"
                             "  legacy:\n"
                             "    servers: [{ address: \"127.0.0.1:5001\", max_concurrent: 8 }]\n"
                             "    queue: { timeout: 5000ms }\n"
                             "    health_check: { interval: 120s }\n"
                             "admin: { listen: \"127.0.0.1:9901\" }\n");
  auto pairs = flatten(*config);
  auto value = [&](const std::string& key) -> std::string {
    for (const auto& [k, v] : pairs)
      if (k == key) return v;
    return "<absent>";
  };
  CHECK(value("routes[0].match.path_prefix") == "/app/");
  CHECK(value("routes[0].match.methods") == "[GET]");
  CHECK(value("routes[0].upstream") == "legacy");
  CHECK(value("routes[0].respond.status") == "<absent>");
  CHECK(value("routes[1].respond.status") == "200");
  CHECK(value("routes[1].respond.body") == "\"ok\\n\"");
  CHECK(value("routes[1].respond.headers") == "{Content-Type: text/plain}");
  CHECK(value("upstreams.legacy.servers[0].max_concurrent") == "8");
  CHECK(value("upstreams.legacy.queue.timeout") == "5s");
  CHECK(value("upstreams.legacy.health_check.interval") == "2m");
  CHECK(value("admin.listen") == "127.0.0.1:9901");
}

TEST_CASE("port 0 may be used by several listeners") {
  ConfigPtr config = load_ok(
      "listeners:\n"
      "  - { name: a, listen: \"127.0.0.1:0\" }\n"
      "  - { name: b, listen: \"127.0.0.1:0\" }\n"
      "admin: { listen: \"127.0.0.1:0\" }\n");
  CHECK(config->listeners.size() == 2);
}
