// Small HTTP/1.1 helpers shared by the loop side (parsing, error responses)
// and the worker side (routing, head transformation). Pure functions on
// bytes: no allocation, no locale (every comparison is ASCII).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace sluice::proxy {

struct RequestHead;

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality (field names, tokens, host names).
bool iequals(std::string_view a, std::string_view b);
// ASCII case-insensitive "a starts with / ends with b".
bool istarts_with(std::string_view a, std::string_view b);
bool iends_with(std::string_view a, std::string_view b);

// RFC 9110 §5.6.2: tchar, and token = 1*tchar.
bool is_tchar(char c);
bool is_token(std::string_view s);

// Strips optional whitespace (SP / HTAB) from both ends.
std::string_view trim_ows(std::string_view s);

// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade (case-insensitive). Never forwarded as received by a proxy.
bool is_hop_by_hop(std::string_view name);

// Calls fn(token) for each element of a comma-separated list field value
// (RFC 9110 §5.6.1), trimmed of OWS; empty elements ("a, ,b") are skipped.
template <class Fn>
void for_each_list_token(std::string_view value, Fn&& fn) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = trim_ows(value.substr(0, comma));
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// Whether `token` is an element of the comma-separated list `value`
// (case-insensitive), e.g. list_has_token("keep-alive, Upgrade", "upgrade").
bool list_has_token(std::string_view value, std::string_view token);

// Whether `name` is listed in any of the request's Connection header lines
// (case-insensitive), i.e. the client declared it hop-by-hop. O(headers):
// to test every header of a request, use ConnectionTokens instead.
bool connection_lists(const RequestHead& head, std::string_view name);

// The tokens of all of a request's Connection header lines, collected once
// (views into the head) so that checking each header is O(tokens), not
// O(headers): a head of thousands of tiny fields must not cost quadratic
// time. Bounded: no real client lists more than a handful of options.
struct ConnectionTokens {
  static constexpr size_t kMax = 32;
  std::array<std::string_view, kMax> tokens{};
  size_t count = 0;

  // False when the request lists more than kMax tokens (the caller answers
  // 400 rather than half-honour the list).
  bool collect(const RequestHead& head);
  bool contains(std::string_view name) const;  // case-insensitive
};

// A WebSocket handshake the proxy passes through: llhttp saw an upgrade
// (head.upgrade) and an Upgrade header lists "websocket" (case-insensitive).
bool is_websocket_upgrade(const RequestHead& head);

// The standard reason phrase (RFC 9110 §15 and the IANA registry), e.g.
// status_reason(404) == "Not Found"; "" for a code without one, which is a
// valid status line ("HTTP/1.1 299 \r\n": the reason-phrase may be empty).
std::string_view status_reason(int code);

// RFC 9110 §9.2.2: GET HEAD PUT DELETE OPTIONS TRACE (case-sensitive:
// method names are). Safe to retry when the upstream failed mid-request.
bool is_idempotent(std::string_view method);

// A Host header value or absolute-form authority, `uri-host [":" port]`,
// without its port, for matching: "Example.com:8080" -> "Example.com",
// "[::1]:8080" -> "[::1]", "example.com." -> "example.com" (one trailing dot
// of a fully-qualified name dropped). Case is left alone: compare with
// iequals. nullopt when the value is not a valid uri-host[:port] (bad
// characters, userinfo, non-digit port, unbalanced brackets). "" is valid
// (an empty Host is allowed when the target has no authority).
std::optional<std::string_view> host_without_port(std::string_view authority);

}  // namespace sluice::proxy
