// routes[].buffer_request / buffer_response and the top-level buffering block.
#include <map>

#include "config/dump.h"
#include "config_test_support.h"

using namespace sluice::config;
using namespace sluice::config::test;
using Errors = std::vector<std::string>;

namespace {

const std::string kUpstream =
    "upstreams:\n"
    "  app:\n"
    "    servers: [{ address: \"127.0.0.1:5001\" }]\n";

}  // namespace

TEST_CASE("buffering: routes buffer both ways unless told otherwise") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) + kUpstream +
                             "routes:\n"
                             "  - name: plain\n"
                             "    upstream: app\n"
                             "  - name: streamed\n"
                             "    upstream: app\n"
                             "    buffer_request: false\n"
                             "    buffer_response: false\n");
  CHECK(config->routes.at(0).buffer_request);
  CHECK(config->routes.at(0).buffer_response);
  CHECK_FALSE(config->routes.at(1).buffer_request);
  CHECK_FALSE(config->routes.at(1).buffer_response);
  CHECK(config->buffering.request_memory == 64 * KiB);
  CHECK(config->buffering.response_memory == 256 * KiB);
  CHECK(config->buffering.temp_dir == "/var/tmp");
  CHECK(config->buffering.max_response_file == 1024 * MiB);
}

TEST_CASE("buffering: the block's values are read and dumped") {
  ConfigPtr config = load_ok(std::string(kMinimalYaml) +
                             "buffering:\n"
                             "  request_memory: 0\n"
                             "  response_memory: 1MiB\n"
                             "  temp_dir: /var/cache/sluice\n"
                             "  max_response_file: 0\n");
  CHECK(config->buffering.request_memory == 0);
  CHECK(config->buffering.response_memory == MiB);
  CHECK(config->buffering.temp_dir == "/var/cache/sluice");
  CHECK(config->buffering.max_response_file == 0);
  auto pairs = flatten(*config);
  std::map<std::string, std::string> dumped(pairs.begin(), pairs.end());
  CHECK(dumped.at("buffering.response_memory") == "1MiB");
  CHECK(dumped.at("buffering.temp_dir") == "/var/cache/sluice");
}

TEST_CASE("buffering: bad values are reported where they are") {
  CHECK(load_errors(std::string(kMinimalYaml) + kUpstream +
                    "routes:\n"
                    "  - name: r\n"
                    "    upstream: app\n"
                    "    buffer_request: yes\n") ==
        Errors{"sluice.yaml:10:21: routes[0].buffer_request: expected true or false, got \"yes\""});
  CHECK(load_errors(std::string(kMinimalYaml) +
                    "buffering:\n"
                    "  temp_dir: spool\n"
                    "  response_memory: 2GiB\n"
                    "  request_memory: lots\n") ==
        Errors{"sluice.yaml:5:13: buffering.temp_dir: must be an absolute path, got \"spool\"",
               "sluice.yaml:6:20: buffering.response_memory: must be between 0 and 1GiB, got 2GiB",
               "sluice.yaml:7:19: buffering.request_memory: invalid size \"lots\"; expected a whole number "
               "of bytes, e.g. \"512\" or \"16KiB\""});
  CHECK(load_errors(std::string(kMinimalYaml) +
                    "routes:\n"
                    "  - name: r\n"
                    "    respond: { status: 204 }\n"
                    "    buffer_response: false\n") ==
        Errors{"sluice.yaml:7:5: routes[0].buffer_response: only allowed on routes with \"upstream\""});
}
