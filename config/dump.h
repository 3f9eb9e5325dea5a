// The effective configuration as "key path = value" pairs, for
// `sluice check --dump` and for tests comparing against the documentation.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace sluice::config {

// Every effective value, defaults included, in file order:
//   {"workers", "2"}, {"listeners[0].timeouts.header", "10s"},
//   {"upstreams.legacy.queue.timeout", "5s"}, ...
// Values are spelled as they would be written in sluice.yaml (format_duration,
// format_size); strings that would not read back the same on one line
// (empty, control characters, edge spaces) are double-quoted with escapes.
// Lists read "[GET, POST]", header mappings "{X-Env: prod}". Optional parts
// that are absent (admin.listen, health_check, match.host, rewrite...) are
// left out.
std::vector<std::pair<std::string, std::string>> flatten(const Config& config);

}  // namespace sluice::config
