#pragma once

#include <string>

namespace sluice {

// Loads the configuration, serves until SIGTERM/SIGINT, drains, and returns
// the process exit code.
int run_daemon(const std::string& config_path);

}  // namespace sluice
