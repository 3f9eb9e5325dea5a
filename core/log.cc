#include "core/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace sluice {

void init_logging(spdlog::level::level_enum level) {
  if (spdlog::get("sluice") == nullptr) {
    auto logger = spdlog::stderr_logger_mt("sluice");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    // Error-log lines are rare and must not sit in a buffer when we crash.
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  spdlog::set_level(level);
}

}  // namespace sluice
