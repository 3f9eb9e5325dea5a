#include "proxy/http_util.h"

#include <algorithm>

#include "proxy/request_head.h"

namespace sluice::proxy {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

bool istarts_with(std::string_view a, std::string_view b) {
  return a.size() >= b.size() && iequals(a.substr(0, b.size()), b);
}

bool iends_with(std::string_view a, std::string_view b) {
  return a.size() >= b.size() && iequals(a.substr(a.size() - b.size()), b);
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_hop_by_hop(std::string_view name) {
  // Dispatch on length first: this runs for every header of every request.
  switch (name.size()) {
    case 2: return iequals(name, "TE");
    case 7: return iequals(name, "Trailer") || iequals(name, "Upgrade");
    case 10: return iequals(name, "Connection") || iequals(name, "Keep-Alive");
    case 16: return iequals(name, "Proxy-Connection");
    case 17: return iequals(name, "Transfer-Encoding");
    default: return false;
  }
}

bool list_has_token(std::string_view value, std::string_view token) {
  bool found = false;
  for_each_list_token(value, [&](std::string_view item) { found = found || iequals(item, token); });
  return found;
}

bool connection_lists(const RequestHead& head, std::string_view name) {
  for (const auto& h : head.headers)
    if (iequals(head.view(h.name), "Connection") && list_has_token(head.view(h.value), name))
      return true;
  return false;
}

bool ConnectionTokens::collect(const RequestHead& head) {
  count = 0;
  bool fits = true;
  for (const auto& h : head.headers) {
    if (!iequals(head.view(h.name), "Connection")) continue;
    for_each_list_token(head.view(h.value), [&](std::string_view token) {
      if (contains(token)) return;
      if (count == kMax)
        fits = false;
      else
        tokens[count++] = token;
    });
  }
  return fits;
}

bool ConnectionTokens::contains(std::string_view name) const {
  for (size_t i = 0; i < count; ++i)
    if (iequals(tokens[i], name)) return true;
  return false;
}

bool is_websocket_upgrade(const RequestHead& head) {
  if (!head.upgrade) return false;
  for (const auto& h : head.headers) {
    if (!iequals(head.view(h.name), "Upgrade")) continue;
    bool ws = false;
    // "websocket" or, in theory, "websocket/13": compare the protocol name.
    for_each_list_token(head.view(h.value), [&](std::string_view item) {
      ws = ws || iequals(item.substr(0, item.find('/')), "websocket");
    });
    if (ws) return true;
  }
  return false;
}

std::string_view status_reason(int code) {
  switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c);
}

// RFC 3986 unreserved / sub-delims.
bool is_host_char(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '-': case '.': case '_': case '~':
    case '!': case '$': case '&': case '\'': case '(': case ')':
    case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}

bool valid_port(std::string_view port) {  // port = *DIGIT
  return std::all_of(port.begin(), port.end(), is_digit);
}

}  // namespace

std::optional<std::string_view> host_without_port(std::string_view authority) {
  std::string_view host;
  std::string_view rest;
  if (!authority.empty() && authority.front() == '[') {
    // IP-literal: IPv6address or IPvFuture, brackets kept.
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    for (char c : authority.substr(1, close - 1))
      if (!is_host_char(c) && c != ':') return std::nullopt;
    host = authority.substr(0, close + 1);
    rest = authority.substr(close + 1);
  } else {
    // reg-name or IPv4address. Stricter than RFC 3986: no pct-encoding,
    // which no DNS name needs and which would make host matching ambiguous.
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
    if (!std::all_of(host.begin(), host.end(), is_host_char)) return std::nullopt;
    if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);
  }
  if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) return std::nullopt;
  return host;
}

}  // namespace sluice::proxy
