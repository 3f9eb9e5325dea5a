// Each kind of mistake, with the exact message and position it gets.
// Line and column are 1-based and point at the offending value, or at the
// key for unknown or misplaced keys.
#include "config_test_support.h"

using namespace sluice::config;
using namespace sluice::config::test;
using Errors = std::vector<std::string>;

// kMinimalYaml followed by `rest`; the lines of `rest` start at line 4.
static std::string minimal_plus(std::string_view rest) { return std::string(kMinimalYaml) + std::string(rest); }

TEST_CASE("a YAML syntax error gives its position and no key path") {
  CHECK(load_errors("listeners: [\n") == Errors{"sluice.yaml:2:1: end of sequence flow not found"});
}

TEST_CASE("an empty file lacks listeners") {
  CHECK(load_errors("") == Errors{"sluice.yaml:1:1: missing required key \"listeners\""});
}

TEST_CASE("more than one YAML document is an error") {
  CHECK(load_errors(std::string(kMinimalYaml) + "---\n" + std::string(kMinimalYaml)) ==
        Errors{"sluice.yaml:5:1: expected one YAML document, found 2"});
}

TEST_CASE("an unknown key gets a did-you-mean") {
  CHECK(load_errors("listeners:\n"
                    "  - name: web\n"
                    "    listen: \"127.0.0.1:8080\"\n"
                    "    timouts: { header: 5s }\n") ==
        Errors{"sluice.yaml:4:5: listeners[0].timouts: unknown key \"timouts\"; did you mean \"timeouts\"?"});
}

TEST_CASE("encoded_slashes takes reject, decode or keep") {
  CHECK(load_ok("listeners:\n"
                "  - name: web\n"
                "    listen: \"127.0.0.1:8080\"\n"
                "    encoded_slashes: decode\n")
            ->listeners[0]
            .encoded_slashes == EncodedSlashes::Decode);
  CHECK(load_errors("listeners:\n"
                    "  - name: web\n"
                    "    listen: \"127.0.0.1:8080\"\n"
                    "    encoded_slashes: decoded\n") ==
        Errors{"sluice.yaml:4:22: listeners[0].encoded_slashes: unknown value \"decoded\"; did you "
               "mean \"decode\"?"});
}

TEST_CASE("an unknown key without a close match lists the allowed keys") {
  CHECK(load_errors(minimal_plus("logging: { colour: true }\n")) ==
        Errors{"sluice.yaml:4:12: logging.colour: unknown key \"colour\"; expected one of level, access_log"});
}

TEST_CASE("a key given twice is an error at the second") {
  CHECK(load_errors(minimal_plus("workers: 2\n"
                                 "workers: 3\n")) ==
        Errors{"sluice.yaml:5:1: workers: duplicate key \"workers\"; first given at line 4"});
}

TEST_CASE("a value of the wrong type says what was expected and found") {
  CHECK(load_errors(minimal_plus("workers: [2]\n"
                                 "admin: \"127.0.0.1:9901\"\n"
                                 "routes: { name: x }\n"
                                 "logging: { level: ~ }\n")) ==
        Errors{
            "sluice.yaml:4:10: workers: expected an integer, got a sequence",
            "sluice.yaml:5:8: admin: expected a mapping, got \"127.0.0.1:9901\"",
            "sluice.yaml:6:9: routes: expected a sequence, got a mapping",
            "sluice.yaml:7:12: logging.level: expected one of trace, debug, info, warn, error, got null",
        });
}

TEST_CASE("a scalar that is not an integer is reported as such") {
  CHECK(load_errors(minimal_plus("workers: many\n")) ==
        Errors{"sluice.yaml:4:10: workers: expected an integer, got \"many\""});
}

TEST_CASE("out-of-range values give the range") {
  CHECK(load_errors("workers: 0\n"
                    "listeners:\n"
                    "  - name: web\n"
                    "    listen: \"127.0.0.1:8080\"\n"
                    "    max_connections: 2000000\n"
                    "    timeouts: { header: 0s }\n"
                    "    limits: { max_header_bytes: 512 }\n"
                    "upstreams:\n"
                    "  app:\n"
                    "    servers: [{ address: \"127.0.0.1:5001\", weight: 0, max_concurrent: -1 }]\n"
                    "    retries: { attempts: 11 }\n") ==
        Errors{
            "sluice.yaml:1:10: workers: must be between 1 and 256, got 0",
            "sluice.yaml:5:22: listeners[0].max_connections: must be between 1 and 1000000, got 2000000",
            "sluice.yaml:6:25: listeners[0].timeouts.header: must be greater than 0s",
            "sluice.yaml:7:33: listeners[0].limits.max_header_bytes: must be between 1KiB and 1MiB, got 512",
            "sluice.yaml:10:52: upstreams.app.servers[0].weight: must be between 1 and 1000, got 0",
            "sluice.yaml:10:71: upstreams.app.servers[0].max_concurrent: must be between 0 and 1000000, got -1",
            "sluice.yaml:11:26: upstreams.app.retries.attempts: must be between 0 and 10, got 11",
        });
}

TEST_CASE("a bad address in a server points at the value") {
  CHECK(load_errors(minimal_plus("upstreams:\n"
                                 "  legacy:\n"
                                 "    servers:\n"
                                 "      - address: localhost\n")) ==
        Errors{"sluice.yaml:7:18: upstreams.legacy.servers[0].address: expected host:port, got \"localhost\""});
}

TEST_CASE("a health check timeout must be less than its interval") {
  CHECK(load_errors(minimal_plus("upstreams:\n"
                                 "  app:\n"
                                 "    servers: [{ address: \"127.0.0.1:5001\" }]\n"
                                 "    health_check: { interval: 2s, timeout: 2s }\n")) ==
        Errors{"sluice.yaml:7:44: upstreams.app.health_check.timeout: must be less than interval (2s), got 2s"});
}

TEST_CASE("missing required keys are reported at their mapping") {
  CHECK(load_errors("listeners:\n"
                    "  - listen: \"127.0.0.1:8080\"\n"
                    "  - name: other\n"
                    "routes:\n"
                    "  - respond: {}\n"
                    "upstreams:\n"
                    "  app: {}\n"
                    "  empty: { servers: [] }\n") ==
        Errors{
            "sluice.yaml:2:5: listeners[0]: missing required key \"name\"",
            "sluice.yaml:3:5: listeners[1]: missing required key \"listen\"",
            "sluice.yaml:5:5: routes[0]: missing required key \"name\"",
            "sluice.yaml:7:8: upstreams.app: missing required key \"servers\"",
            "sluice.yaml:8:21: upstreams.empty.servers: at least one server is required",
        });
}

TEST_CASE("an empty listener list is an error") {
  CHECK(load_errors("listeners: []\n") == Errors{"sluice.yaml:1:12: listeners: at least one listener is required"});
}

TEST_CASE("more listeners than a connection can index are an error") {
  // 65,536 distinct listeners: 127.0.0.1 and 127.0.0.2, ports 1 to 32768.
  std::string yaml = "listeners:\n";
  for (int i = 0; i < 65536; ++i) {
    yaml += "  - { name: l" + std::to_string(i) + ", listen: \"127.0.0." + std::to_string(1 + i / 32768) +
            ":" + std::to_string(1 + i % 32768) + "\" }\n";
  }
  CHECK(load_errors(yaml) ==
        Errors{"sluice.yaml:2:3: listeners: at most 65535 listeners are supported, not 65536"});
}

TEST_CASE("two path matchers in one route are an error") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    match: { path_prefix: /a/, path_exact: /a }\n"
                                 "    respond: {}\n")) ==
        Errors{"sluice.yaml:6:32: routes[0].match.path_exact: only one of path_exact, path_prefix or path_regex "
               "may be set; \"path_prefix\" is already set"});
}

TEST_CASE("a path must start with a slash") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    match: { path_prefix: api/ }\n"
                                 "    respond: {}\n")) ==
        Errors{"sluice.yaml:6:27: routes[0].match.path_prefix: must start with \"/\", got \"api/\""});
}

TEST_CASE("a bad regex gets RE2's message") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    match: { path_regex: \"/(a\" }\n"
                                 "    respond: {}\n")) ==
        Errors{"sluice.yaml:6:26: routes[0].match.path_regex: invalid regular expression: missing ): /(a"});
}

TEST_CASE("a host may only have a leading wildcard") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    match: { host: \"api.*.com\" }\n"
                                 "    respond: {}\n")) ==
        Errors{"sluice.yaml:6:20: routes[0].match.host: \"*\" is only allowed as a leading \"*.\", e.g. "
               "\"*.example.com\"; got \"api.*.com\""});
}

TEST_CASE("an unknown upstream gets a did-you-mean over upstream names") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    upstream: legcy\n"
                                 "upstreams:\n"
                                 "  legacy: { servers: [{ address: \"127.0.0.1:5001\" }] }\n")) ==
        Errors{"sluice.yaml:6:15: routes[0].upstream: unknown upstream \"legcy\"; did you mean \"legacy\"?"});
}

TEST_CASE("an unknown upstream without a close match lists the defined ones") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    upstream: payments\n"
                                 "upstreams:\n"
                                 "  legacy: { servers: [{ address: \"127.0.0.1:5001\" }] }\n")) ==
        Errors{"sluice.yaml:6:15: routes[0].upstream: unknown upstream \"payments\"; defined upstreams: legacy"});
}

TEST_CASE("a route with both upstream and respond is an error") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    upstream: app\n"
                                 "    respond: {}\n"
                                 "upstreams:\n"
                                 "  app: { servers: [{ address: \"127.0.0.1:5001\" }] }\n")) ==
        Errors{"sluice.yaml:7:5: routes[0]: \"upstream\" and \"respond\" are mutually exclusive; use one"});
}

TEST_CASE("a route with neither upstream nor respond is an error") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    match: { path_prefix: / }\n")) ==
        Errors{"sluice.yaml:5:5: routes[0]: needs \"upstream\" (to proxy) or \"respond\" (to answer directly)"});
}

TEST_CASE("rewrite on a respond route is an error") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    respond: { status: 204 }\n"
                                 "    rewrite: { strip_prefix: /a }\n")) ==
        Errors{"sluice.yaml:7:5: routes[0].rewrite: only allowed on routes with \"upstream\""});
}

TEST_CASE("duplicate route names point at the first") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    respond: {}\n"
                                 "  - name: r\n"
                                 "    respond: {}\n")) ==
        Errors{"sluice.yaml:7:11: routes[1].name: duplicate route name \"r\"; already used by routes[0] at line 5"});
}

TEST_CASE("duplicate listener names point at the first") {
  CHECK(load_errors("listeners:\n"
                    "  - name: web\n"
                    "    listen: \"127.0.0.1:8080\"\n"
                    "  - name: web\n"
                    "    listen: \"127.0.0.1:8081\"\n") ==
        Errors{"sluice.yaml:4:11: listeners[1].name: duplicate listener name \"web\"; already used by listeners[0] "
               "at line 2"});
}

TEST_CASE("a listen address used twice is an error, across listeners and admin") {
  CHECK(load_errors("listeners:\n"
                    "  - name: web\n"
                    "    listen: \"127.0.0.1:8080\"\n"
                    "  - name: other\n"
                    "    listen: \"127.0.0.1:8080\"\n"
                    "admin:\n"
                    "  listen: \"127.0.0.1:8080\"\n") ==
        Errors{
            "sluice.yaml:5:13: listeners[1].listen: address \"127.0.0.1:8080\" already used by listeners[0] at line 3",
            "sluice.yaml:7:11: admin.listen: address \"127.0.0.1:8080\" already used by listeners[0] at line 3",
        });
}

TEST_CASE("a wildcard listen address overlapping another on its port is an error") {
  CHECK(load_errors("listeners:\n"
                    "  - name: web\n"
                    "    listen: \"0.0.0.0:8080\"\n"
                    "admin:\n"
                    "  listen: \"127.0.0.1:8080\"\n") ==
        Errors{
            "sluice.yaml:5:11: admin.listen: address \"127.0.0.1:8080\" overlaps \"0.0.0.0:8080\" of listeners[0] at line 3",
        });
  // Another port on the same host is fine.
  CHECK(load_ok("listeners:\n"
                "  - name: web\n"
                "    listen: \"0.0.0.0:8080\"\n"
                "admin:\n"
                "  listen: \"127.0.0.1:9090\"\n") != nullptr);
}

TEST_CASE("a server listed twice in one upstream is an error") {
  CHECK(load_errors(minimal_plus("upstreams:\n"
                                 "  app:\n"
                                 "    servers:\n"
                                 "      - address: \"127.0.0.1:5001\"\n"
                                 "      - address: \"127.0.0.1:5001\"\n")) ==
        Errors{"sluice.yaml:8:18: upstreams.app.servers[1].address: address \"127.0.0.1:5001\" already used by "
               "upstreams.app.servers[0] at line 7"});
}

TEST_CASE("a bad enum value gets a did-you-mean") {
  CHECK(
      load_errors(minimal_plus("upstreams:\n"
                               "  app:\n"
                               "    servers: [{ address: \"127.0.0.1:5001\" }]\n"
                               "    balance: round_robbin\n")) ==
      Errors{"sluice.yaml:7:14: upstreams.app.balance: unknown value \"round_robbin\"; did you mean \"round_robin\"?"});
}

TEST_CASE("a bad enum value without a close match lists the values") {
  CHECK(load_errors(minimal_plus("logging: { level: verbose }\n")) ==
        Errors{"sluice.yaml:4:19: logging.level: unknown value \"verbose\"; expected one of trace, debug, info, warn, "
               "error"});
}

TEST_CASE("a lower-case method is refused with its upper-case form") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    match: { methods: [GET, post] }\n"
                                 "    respond: {}\n")) ==
        Errors{"sluice.yaml:6:29: routes[0].match.methods[1]: invalid method \"post\": methods are case-sensitive; did "
               "you mean \"POST\"?"});
}

TEST_CASE("a header name must be a token") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    respond: { headers: { \"Content Type\": text/plain } }\n")) ==
        Errors{"sluice.yaml:6:27: routes[0].respond.headers.Content Type: invalid header name \"Content Type\": not an "
               "HTTP token"});
}

TEST_CASE("a header value may not contain CR or LF") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    respond: {}\n"
                                 "    response_headers: { set: { X-A: \"a\\r\\nSet-Cookie: x\" } }\n")) ==
        Errors{"sluice.yaml:7:37: routes[0].response_headers.set.X-A: header value must not contain CR, LF or NUL, "
               "got \"a\\r\\nSet-Cookie: x\""});
}

TEST_CASE("headers managed by sluice cannot be set or removed") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    respond: { headers: { content-length: \"5\" } }\n"
                                 "    response_headers: { remove: [Transfer-Encoding] }\n")) ==
        Errors{
            "sluice.yaml:6:27: routes[0].respond.headers.content-length: header \"content-length\" is managed by "
            "sluice and cannot be set or removed",
            "sluice.yaml:7:34: routes[0].response_headers.remove[0]: header \"Transfer-Encoding\" is managed by "
            "sluice and cannot be set or removed",
        });
}

TEST_CASE("every error in a file is reported, in file order") {
  Errors errors = load_errors(
      "workers: 1000\n"
      "listeners:\n"
      "  - name: web\n"
      "    listen: \"127.0.0.1:80800\"\n"
      "    timeouts: { header: 10 }\n"
      "routes:\n"
      "  - name: r\n"
      "    upstream: nope\n"
      "    colour: blue\n"
      "upstreams:\n"
      "  app:\n"
      "    servers: [{ address: \"127.0.0.1:5001\", weight: heavy }]\n"
      "logging: { access_log: { format: jsn } }\n");
  CHECK(errors ==
        Errors{
            "sluice.yaml:1:10: workers: must be between 1 and 256, got 1000",
            "sluice.yaml:4:13: listeners[0].listen: port 80800 is out of range 0..65535 in \"127.0.0.1:80800\"",
            "sluice.yaml:5:25: listeners[0].timeouts.header: duration \"10\" has no unit; add one of ms, s, "
            "m or h, e.g. \"10s\"",
            "sluice.yaml:8:15: routes[0].upstream: unknown upstream \"nope\"; defined upstreams: app",
            "sluice.yaml:9:5: routes[0].colour: unknown key \"colour\"; expected one of name, match, "
            "upstream, respond, rewrite, request_headers, response_headers, priority, "
            "buffer_request, buffer_response",
            "sluice.yaml:12:52: upstreams.app.servers[0].weight: expected an integer, got \"heavy\"",
            "sluice.yaml:13:34: logging.access_log.format: unknown value \"jsn\"; did you mean \"json\"?",
        });
  CHECK(errors.size() == 7);
}

TEST_CASE("a broken upstreams section does not make every reference unknown") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    upstream: app\n"
                                 "upstreams: [app]\n")) ==
        Errors{"sluice.yaml:7:12: upstreams: expected a mapping, got a sequence"});
}

TEST_CASE("ConfigError::to_string leaves out what is unknown") {
  CHECK(ConfigError{"f.yaml", 3, 7, "workers", "bad"}.to_string() == "f.yaml:3:7: workers: bad");
  CHECK(ConfigError{"f.yaml", 3, 7, "", "bad"}.to_string() == "f.yaml:3:7: bad");
  CHECK(ConfigError{"f.yaml", 0, 0, "", "cannot read: x"}.to_string() == "f.yaml: cannot read: x");
}

TEST_CASE("input nested too deeply is an error, not a crash") {
  std::string yaml = "listeners: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  Errors errors = load_errors(yaml);
  REQUIRE(errors.size() == 1);
  // The column is wherever yaml-cpp's depth guard gave up.
  CHECK_THAT(errors[0], Catch::StartsWith("sluice.yaml:1:") && Catch::EndsWith(": nested too deeply"));
}

TEST_CASE("Host cannot be removed from a forwarded request") {
  CHECK(load_errors(minimal_plus("routes:\n"
                                 "  - name: r\n"
                                 "    upstream: app\n"
                                 "    request_headers: { remove: [X-Debug, host] }\n"
                                 "upstreams:\n"
                                 "  app: { servers: [{ address: \"127.0.0.1:5001\" }] }\n")) ==
        Errors{"sluice.yaml:7:42: routes[0].request_headers.remove[1]: header \"host\" cannot be removed: an HTTP/1.1 "
               "request needs one; use \"set\" to change it"});
}
