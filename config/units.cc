#include "config/units.h"

#include <netdb.h>

#include <array>
#include <charconv>
#include <cstring>

#include "config/strings.h"

namespace sluice::config {
namespace {

struct Unit {
  std::string_view name;
  uint64_t factor;
};

// Largest first: formatting picks the first unit that divides exactly.
constexpr std::array<Unit, 4> kDurationUnits{{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};
constexpr std::array<Unit, 4> kSizeUnits{{{"GiB", 1024 * MiB}, {"MiB", MiB}, {"KiB", KiB}, {"B", 1}}};

// Splits "250ms" into 250 and "ms". Only ASCII digits are a number: no sign,
// no fraction, no exponent. Fails when there are no digits or they overflow.
struct NumberAndUnit {
  uint64_t number = 0;
  std::string_view unit;
};
enum class SplitError { NoDigits, Overflow };

Result<NumberAndUnit, SplitError> split_number(std::string_view text) {
  NumberAndUnit out;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out.number);
  if (end == text.data()) return unexpected(SplitError::NoDigits);
  if (ec == std::errc::result_out_of_range) return unexpected(SplitError::Overflow);
  out.unit = text.substr(static_cast<size_t>(end - text.data()));
  return out;
}

template <size_t N>
const Unit* find_unit(const std::array<Unit, N>& units, std::string_view name) {
  for (const auto& u : units)
    if (u.name == name) return &u;
  return nullptr;
}

template <size_t N>
std::string format_in_units(uint64_t value, const std::array<Unit, N>& units, std::string_view zero) {
  if (value == 0) return std::string(zero);
  for (const auto& u : units)
    if (value % u.factor == 0) return std::to_string(value / u.factor) + std::string(u.name);
  return std::to_string(value);
}

// "65535" -> 65535; anything else (sign, letters, > 65535) is an error.
Result<uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size())
    return unexpected("invalid port " + quoted(text) + " in " + quoted(whole));
  if (ec == std::errc::result_out_of_range || value > 65535)
    return unexpected("port " + std::string(text) + " is out of range 0..65535 in " + quoted(whole));
  return static_cast<uint16_t>(value);
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const std::string hint = "expected a whole number and a unit (ms, s, m or h), e.g. \"250ms\" or \"5s\"";
  if (text.empty()) return unexpected("empty duration; " + hint);
  auto split = split_number(text);
  if (!split) {
    if (split.error() == SplitError::Overflow) return unexpected("duration " + quoted(text) + " is too large");
    return unexpected("invalid duration " + quoted(text) + "; " + hint);
  }
  auto [number, unit_name] = *split;
  if (unit_name.empty())
    return unexpected("duration " + quoted(text) + " has no unit; add one of ms, s, m or h, e.g. \"" +
                      std::string(text) + "s\"");
  const Unit* unit = find_unit(kDurationUnits, unit_name);
  if (!unit) return unexpected("invalid duration " + quoted(text) + "; " + hint);
  uint64_t ms = 0;
  constexpr auto kMaxMs = static_cast<uint64_t>(Duration::max().count());
  if (__builtin_mul_overflow(number, unit->factor, &ms) || ms > kMaxMs)
    return unexpected("duration " + quoted(text) + " is too large");
  return Duration(static_cast<Duration::rep>(ms));
}

std::string format_duration(Duration d) {
  if (d.count() < 0) return "-" + format_duration(-d);
  return format_in_units(static_cast<uint64_t>(d.count()), kDurationUnits, "0s");
}

Result<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return unexpected(std::string("empty size; expected bytes, e.g. \"512\" or \"16KiB\""));
  auto split = split_number(text);
  if (!split) {
    if (split.error() == SplitError::Overflow) return unexpected("size " + quoted(text) + " is too large");
    return unexpected("invalid size " + quoted(text) + "; expected a whole number of bytes, e.g. \"512\" or \"16KiB\"");
  }
  auto [number, unit_name] = *split;
  uint64_t factor = 1;
  if (!unit_name.empty()) {
    const Unit* unit = find_unit(kSizeUnits, unit_name);
    if (!unit)
      return unexpected("unknown unit " + quoted(unit_name) + " in size " + quoted(text) +
                        "; use B, KiB, MiB or GiB (1KiB = 1024 bytes)");
    factor = unit->factor;
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(number, factor, &bytes)) return unexpected("size " + quoted(text) + " is too large");
  return bytes;
}

std::string format_size(uint64_t bytes) {
  // Plain bytes rather than "B": "512" reads as the YAML most people write.
  if (bytes % KiB != 0) return std::to_string(bytes);
  return format_in_units(bytes, kSizeUnits, "0");
}

Result<SocketAddress> parse_address(std::string_view text) {
  const std::string expected = "expected host:port, got " + quoted(text);
  std::string_view host;
  std::string_view port;
  bool literal_v6 = false;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return unexpected("missing \"]\" after the IPv6 address in " + quoted(text));
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.size() < 2 || rest.front() != ':') return unexpected(expected);
    port = rest.substr(1);
    literal_v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == text.size()) return unexpected(expected);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return unexpected("IPv6 addresses need brackets, e.g. \"[::1]:8080\"; got " + quoted(text));
  }
  if (host.empty())
    return unexpected("missing host in " + quoted(text) + "; e.g. \"0.0.0.0:8080\" for every interface");

  auto port_number = parse_port(port, text);
  if (!port_number) return unexpected(port_number.error());

  SocketAddress addr;
  addr.text = std::string(text);
  addr.host = std::string(host);
  addr.port = *port_number;

  addrinfo hints{};
  hints.ai_family = literal_v6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (literal_v6 ? AI_NUMERICHOST : 0);
  addrinfo* found = nullptr;
  const std::string port_text(port);
  int rc = getaddrinfo(addr.host.c_str(), port_text.c_str(), &hints, &found);
  if (rc != 0) {
    if (literal_v6) return unexpected("invalid IPv6 address " + quoted(host) + " in " + quoted(text));
    return unexpected("cannot resolve host " + quoted(host) + ": " + gai_strerror(rc));
  }
  std::memcpy(&addr.sockaddr, found->ai_addr, found->ai_addrlen);
  addr.sockaddr_len = found->ai_addrlen;
  freeaddrinfo(found);
  return addr;
}

}  // namespace sluice::config
