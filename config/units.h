// Parsing and canonical formatting of the value formats used in sluice.yaml:
// durations ("250ms"), sizes ("16KiB") and socket addresses ("[::1]:8080").
// Errors are plain messages without a position; the loader adds one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/result.h"

namespace sluice::config {

// A whole number followed by one unit: ms, s, m or h ("250ms", "5s", "0s").
// A bare number is refused (is "30" seconds or milliseconds?).
Result<Duration> parse_duration(std::string_view text);
// In the largest unit that divides it exactly: 10000ms -> "10s", 0 -> "0s".
std::string format_duration(Duration d);

// Bytes as a plain whole number ("512"), or with B, KiB, MiB or GiB (powers
// of 1024). K, KB, MB... are refused: they mean 1000 to some and 1024 to others.
Result<uint64_t> parse_size(std::string_view text);
// In the largest binary unit that divides it exactly, else plain bytes:
// 16384 -> "16KiB", 1000 -> "1000", 0 -> "0".
std::string format_size(uint64_t bytes);

// "host:port" with an IPv4 literal, a bracketed IPv6 literal ("[::1]:8080")
// or a host name, which is resolved now (first getaddrinfo result). The port
// is numeric, 0..65535; 0 is accepted (bind to any free port).
Result<SocketAddress> parse_address(std::string_view text);

}  // namespace sluice::config
