#include "config/value_parsers.h"

#include <re2/re2.h>

#include <algorithm>
#include <charconv>

#include "config/units.h"

namespace sluice::config {
namespace {

// RFC 9110 tchar: what a method or a header name may be made of.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

bool is_visible_ascii(char c) { return c > 0x20 && c < 0x7f; }

template <class T>
Parser<T> checked(Parser<T> base, std::function<std::string(const T&)> problem) {
  auto parse = base.parse;
  base.parse = [parse, problem](std::string_view text) -> Result<T> {
    auto value = parse(text);
    if (!value) return value;
    if (auto message = problem(*value); !message.empty()) return unexpected(message);
    return value;
  };
  return base;
}

}  // namespace

Result<int64_t> parse_integer(std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size()) return unexpected("expected an integer, got " + quoted(text));
  if (ec == std::errc::result_out_of_range) return unexpected("integer " + std::string(text) + " is too large");
  return value;
}

Parser<Duration> any_duration() { return {"a duration", parse_duration}; }

Parser<Duration> positive_duration() {
  return checked<Duration>(any_duration(), [](const Duration& d) {
    return d > Duration::zero() ? std::string() : "must be greater than 0s";
  });
}

Parser<uint64_t> any_size() { return {"a size", parse_size}; }

Parser<uint64_t> size_between(uint64_t lo, uint64_t hi) {
  return checked<uint64_t>(any_size(), [lo, hi](const uint64_t& bytes) {
    if (bytes >= lo && bytes <= hi) return std::string();
    return "must be between " + format_size(lo) + " and " + format_size(hi) + ", got " + format_size(bytes);
  });
}

Parser<SocketAddress> address() { return {"a host:port address", parse_address}; }

Parser<std::string> text() {
  return {"a string", [](std::string_view s) -> Result<std::string> { return std::string(s); }};
}

Parser<std::string> non_empty_text() {
  return checked<std::string>(text(),
                              [](const std::string& s) { return s.empty() ? "must not be empty" : std::string(); });
}

Parser<std::string> name() {
  return checked<std::string>(text(), [](const std::string& s) {
    bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    return ok ? std::string() : "invalid name " + quoted(s) + "; use letters, digits, \"_\" and \"-\"";
  });
}

Parser<std::string> url_path() {
  return checked<std::string>(text(), [](const std::string& s) {
    if (s.empty() || s.front() != '/') return "must start with \"/\", got " + quoted(s);
    if (!std::all_of(s.begin(), s.end(), is_visible_ascii))
      return "must not contain spaces or control characters, got " + quoted(s);
    return std::string();
  });
}

Parser<std::string> host_pattern() {
  return {"a host name", [](std::string_view written) -> Result<std::string> {
            std::string host = to_lower(written);
            std::string_view rest = host;
            if (rest.substr(0, 2) == "*.") rest.remove_prefix(2);
            if (rest.find('*') != std::string_view::npos)
              return unexpected("\"*\" is only allowed as a leading \"*.\", e.g. \"*.example.com\"; got " +
                                quoted(written));
            bool ok = !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
            });
            if (!ok)
              return unexpected("invalid host " + quoted(written) +
                                "; expected a host name like \"api.example.com\" or \"*.example.com\"");
            return host;
          }};
}

Parser<std::shared_ptr<const re2::RE2>> regex() {
  return {"a regular expression", [](std::string_view pattern) -> Result<std::shared_ptr<const re2::RE2>> {
            RE2::Options options;
            options.set_log_errors(false);  // the message goes into the config error instead
            auto re = std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
            if (!re->ok()) return unexpected("invalid regular expression: " + re->error());
            return std::shared_ptr<const re2::RE2>(std::move(re));
          }};
}

Parser<std::string> http_method() {
  return checked<std::string>(text(), [](const std::string& s) {
    if (!is_token(s)) return "invalid method " + quoted(s) + ": not an HTTP token";
    // Methods are case-sensitive (RFC 9110 9.1): "get" would never match a GET.
    if (std::string upper = to_upper(s); upper != s)
      return "invalid method " + quoted(s) + ": methods are case-sensitive; did you mean " + quoted(upper) + "?";
    return std::string();
  });
}

Parser<std::string> header_name() {
  return checked<std::string>(text(), [](const std::string& s) {
    return is_token(s) ? std::string() : "invalid header name " + quoted(s) + ": not an HTTP token";
  });
}

Parser<std::string> editable_header_name() {
  return checked<std::string>(header_name(), [](const std::string& s) {
    // The proxy writes these itself (see proxy_managed() in
    // proxy/forward_head.cc) and would silently ignore an edit; letting the
    // config change the framing ones could also desynchronise client, proxy
    // and upstream about where a message ends (request smuggling).
    for (std::string_view managed : {"Connection", "Content-Length", "Expect", "Keep-Alive", "Proxy-Connection", "TE",
                                     "Trailer", "Transfer-Encoding", "Upgrade"})
      if (iequals(s, managed)) return "header " + quoted(s) + " is managed by sluice and cannot be set or removed";
    return std::string();
  });
}

Parser<std::string> removable_request_header() {
  return checked<std::string>(editable_header_name(), [](const std::string& s) {
    if (!iequals(s, "Host")) return std::string();
    return "header " + quoted(s) + " cannot be removed: an HTTP/1.1 request needs one; use \"set\" to change it";
  });
}

Parser<std::string> header_value() {
  return checked<std::string>(text(), [](const std::string& s) {
    bool ok = s.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
    if (!ok) return "header value must not contain CR, LF or NUL, got " + quoted(s);
    // RFC 9110 §5.5: no other control character either. A strict peer
    // refuses the message that carries one, so every request or response
    // of the route would fail (found by tests/fuzz/config_fuzz).
    bool ctl = std::any_of(s.begin(), s.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return (u < 0x20 && c != '\t') || u == 0x7f;
    });
    return ctl ? "header value must not contain control characters other than tab, got " + quoted(s) : std::string();
  });
}

}  // namespace sluice::config
