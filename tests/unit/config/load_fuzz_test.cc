// Regressions found by tests/fuzz/config_fuzz, each with the input shape
// that showed it.
#include "config_test_support.h"

using namespace sluice::config;
using namespace sluice::config::test;
using Errors = std::vector<std::string>;

// kMinimalYaml and one route named r, whose lines follow from line 6.
static std::string minimal_plus_routes(std::string_view route_lines) {
  return std::string(kMinimalYaml) + "routes:\n  - name: r\n" + std::string(route_lines);
}

// yaml-cpp 0.7's LoadAll never returned on these (it added empty documents
// until memory ran out): `sluice check` hung, and a SIGHUP reload of such a
// file would have taken the daemon down.
TEST_CASE("a stray flow indicator is a syntax error, not a hang", "[fuzz]") {
  CHECK(load_errors(",") == Errors{"sluice.yaml:1:1: unexpected \",\""});
  CHECK(load_errors(", listeners: []\n") == Errors{"sluice.yaml:1:1: unexpected \",\""});
  CHECK(load_errors(std::string(kMinimalYaml) + "...\n,\n") == Errors{"sluice.yaml:5:1: unexpected \",\""});
}

TEST_CASE("counting documents ourselves keeps the multi-document error as it was", "[fuzz]") {
  CHECK(load_errors(std::string(kMinimalYaml) + "---\n" + std::string(kMinimalYaml) + "---\nworkers: 1\n") ==
        Errors{"sluice.yaml:5:1: expected one YAML document, found 3"});
  // A single document, explicit markers and comments included, still loads.
  load_ok("# sluice\n---\n" + std::string(kMinimalYaml) + "...\n");
}

// A respond header "X-A: \x12b c" loaded, and every answer of the route
// carried a byte a strict client refuses.
TEST_CASE("a header value may not contain any control character but tab", "[fuzz]") {
  CHECK(load_errors(minimal_plus_routes("    respond: { headers: { X-A: \"\\x12b c\" } }\n")) ==
        Errors{"sluice.yaml:6:32: routes[0].respond.headers.X-A: header value must not contain control characters "
               "other than tab, got \"\\x12b c\""});
  CHECK(load_errors(minimal_plus_routes("    respond: {}\n"
                                        "    response_headers: { set: { X-A: \"del\\x7f\" } }\n"))
            .size() == 1);
  auto cfg = load_ok(minimal_plus_routes("    respond: { headers: { X-A: \"tab\\there, caf\\u00e9\" } }\n"));
  CHECK(cfg->routes[0].respond->headers[0].second == "tab\there, caf\xc3\xa9");
}
