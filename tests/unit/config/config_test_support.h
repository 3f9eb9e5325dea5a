// Helpers for the config unit tests: load inline YAML as "sluice.yaml".
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "config/load.h"

namespace sluice::config::test {

// The smallest valid file: one listener, nothing else.
inline constexpr std::string_view kMinimalYaml =
    "listeners:\n"
    "  - name: web\n"
    "    listen: \"127.0.0.1:8080\"\n";

// Loads `yaml` and requires success, showing the errors if there are any.
inline ConfigPtr load_ok(std::string_view yaml) {
  auto result = load_string(yaml, "sluice.yaml");
  if (!result) {
    for (const auto& error : result.error()) UNSCOPED_INFO(error.to_string());
  }
  REQUIRE(result.ok());
  return *result;
}

// Loads `yaml`, requires failure, and returns the errors as printed.
inline std::vector<std::string> load_errors(std::string_view yaml) {
  auto result = load_string(yaml, "sluice.yaml");
  REQUIRE_FALSE(result.ok());
  std::vector<std::string> lines;
  for (const auto& error : result.error()) lines.push_back(error.to_string());
  return lines;
}

}  // namespace sluice::config::test
