// Loading sluice.yaml into a Config. Everything is checked before a Config
// is returned, and every problem in the file is reported, not only the
// first, each with its position and key path:
//   sluice.yaml:14:7: upstreams.legacy.servers[0].address: expected host:port, got "localhost"
// Nothing here throws.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/result.h"

namespace sluice::config {

struct ConfigError {
  std::string file;
  int line = 0;      // 1-based; 0 = about the whole file (e.g. unreadable)
  int column = 0;    // 1-based
  std::string path;  // "listeners[0].timeouts.header"; empty for syntax errors
  std::string message;

  // "file:line:col: path: message", leaving out what is unknown.
  std::string to_string() const;
};

using ConfigErrors = std::vector<ConfigError>;

Result<ConfigPtr, ConfigErrors> load_file(const std::string& path);
// As load_file, from memory; `file_name` is used in messages and Config::source.
Result<ConfigPtr, ConfigErrors> load_string(std::string_view yaml, std::string_view file_name);

}  // namespace sluice::config
