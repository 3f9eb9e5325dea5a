// The sluice executable: `sluice --config FILE` runs the daemon in the
// foreground (systemd supervises it; there is no self-daemonising), and
// `sluice check --config FILE` (or `-t`) validates a file like `nginx -t`.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "cmd/daemon.h"
#include "config/dump.h"
#include "config/load.h"

namespace {

int check(const std::string& path, bool dump) {
  auto cfg = sluice::config::load_file(path);
  if (!cfg) {
    for (const auto& e : cfg.error()) std::cerr << e.to_string() << "\n";
    std::cerr << "sluice: configuration file " << path << " test failed ("
              << cfg.error().size() << " error" << (cfg.error().size() == 1 ? "" : "s") << ")\n";
    return 1;
  }
  if (dump) {
    for (const auto& [key, value] : sluice::config::flatten(**cfg)) {
      std::cout << key << " = " << value << "\n";
    }
  }
  std::cerr << "sluice: configuration file " << path << " test is successful\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: a reverse proxy that shields thread-per-request applications"};
  app.set_version_flag("-v,--version", std::string("sluice ") + SLUICE_VERSION);

  std::string config_path = "/etc/sluice/sluice.yaml";
  bool test_only = false;
  bool dump = false;
  app.add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
  app.add_flag("-t,--test", test_only, "Check the configuration and exit (same as `check`)");

  auto* check_cmd = app.add_subcommand("check", "Check a configuration file and exit 0 (valid) or 1");
  check_cmd->add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
  check_cmd->add_flag("--dump", dump, "Print every effective setting, defaults included");

  CLI11_PARSE(app, argc, argv);

  if (test_only || check_cmd->parsed()) return check(config_path, dump);
  return sluice::run_daemon(config_path);
}
