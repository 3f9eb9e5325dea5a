// The shipped example files must stay valid.
#include "config/dump.h"
#include "config_test_support.h"

using namespace sluice::config;

static const std::string kSourceDir = SLUICE_SOURCE_DIR;

static ConfigPtr load_example(const std::string& name) {
  auto result = load_file(kSourceDir + "/config/examples/" + name);
  if (!result) {
    for (const auto& error : result.error()) UNSCOPED_INFO(error.to_string());
  }
  REQUIRE(result.ok());
  return *result;
}

TEST_CASE("config/examples/demo.yaml loads") {
  ConfigPtr config = load_example("demo.yaml");
  CHECK(config->source == kSourceDir + "/config/examples/demo.yaml");
  CHECK(config->listeners.at(0).listen.text == "127.0.0.1:8080");
  REQUIRE(config->find_upstream("demo") != nullptr);
  CHECK(config->find_upstream("demo")->servers.at(0).max_concurrent == 8);
  CHECK(config->admin.listen.has_value());
}

TEST_CASE("config/examples/full.yaml loads and sets every key") {
  ConfigPtr config = load_example("full.yaml");
  CHECK(config->workers == 4);
  CHECK(config->upstreams.at(0).health_check.has_value());
  CHECK(config->logging.access_log.format == AccessLogFormat::Json);
}

TEST_CASE("load_file reports a file it cannot read") {
  auto result = load_file(kSourceDir + "/config/examples/no-such-file.yaml");
  REQUIRE_FALSE(result.ok());
  REQUIRE(result.error().size() == 1);
  CHECK(result.error()[0].to_string() ==
        kSourceDir + "/config/examples/no-such-file.yaml: cannot read: No such file or directory");
}
