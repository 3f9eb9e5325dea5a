// The sluice daemon as an operator runs it: a child process with a config
// file, talking HTTP on 127.0.0.1 with an ephemeral port.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_file.h"

using namespace sluice::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

constexpr const char* kSluice = SLUICE_BINARY;

// Starts `sluice --config FILE` and waits for its listener to be ready.
struct Daemon {
  TempFile config;
  Process proc;
  uint16_t port = 0;

  explicit Daemon(std::string_view yaml)
      : config(yaml), proc({kSluice, "--config", config.path()}) {
    std::string line;
    bool ready = proc.wait_for_line(R"(listening on 127\.0\.0\.1:\d+)", 10s, &line);
    INFO(proc.output());
    REQUIRE(ready);
    std::smatch m;
    REQUIRE(std::regex_search(line, m, std::regex(R"(127\.0\.0\.1:(\d+))")));
    port = static_cast<uint16_t>(std::stoi(m[1]));
  }
};

struct Run {
  int status;
  std::string output;
};

// Runs sluice with `args` to completion (at most 10 s).
Run run_sluice(std::vector<std::string> args) {
  args.insert(args.begin(), kSluice);
  Process p(std::move(args));
  auto status = p.wait_exit(10s);
  INFO(p.output());
  REQUIRE(status.has_value());
  return {*status, p.output()};
}

}  // namespace

TEST_CASE("sluice answers a respond route and exits 0 on SIGTERM") {
  Daemon d(R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: health
    match: { path_exact: "/healthz" }
    respond: { status: 200, body: "ok\n" }
)");

  HttpResponse r = get(d.port, "/healthz");
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");

  d.proc.signal(SIGTERM);
  auto status = d.proc.wait_exit(10s);
  INFO(d.proc.output());
  CHECK(status == 0);
}

TEST_CASE("sluice check accepts the demo config") {
  Run r = run_sluice({"check", "--config", SLUICE_SOURCE_DIR "/config/examples/demo.yaml"});
  INFO(r.output);
  CHECK(r.status == 0);
}

TEST_CASE("sluice check rejects an unknown key with its position") {
  TempFile bad(
      "# the key below is misspelt\nlistners:\n  - name: web\n    listen: \"127.0.0.1:0\"\n");
  Run r = run_sluice({"check", "--config", bad.path()});
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Contains(bad.path() + ":2:1:"));
  CHECK_THAT(r.output, Contains(R"(unknown key "listners"; did you mean "listeners"?)"));
}

TEST_CASE("sluice --version prints a version") {
  Run r = run_sluice({"--version"});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(std::regex_search(r.output, std::regex(R"(\d+\.\d+\.\d+)")));
}
