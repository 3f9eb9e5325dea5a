// The error log: spdlog to stderr, which systemd hands to journald. The
// access log (a separate, asynchronous logger) lives with the proxy.
#pragma once

#include <spdlog/spdlog.h>

namespace sluice {

// Installs the process-wide default logger; safe to call again on reload.
void init_logging(spdlog::level::level_enum level);

}  // namespace sluice
