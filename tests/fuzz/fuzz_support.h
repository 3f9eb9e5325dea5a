// Shared by the fuzz targets: an invariant check that aborts (so libFuzzer
// keeps the input), and an independent strict re-parse of the HTTP bytes
// sluice produced, the way the next hop (app or client) would read them.
#pragma once

#include <llhttp.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::fuzz {

// What a target produced, printed when an invariant breaks (escaped).
inline std::string& context() {
  static std::string text;
  return text;
}

[[noreturn]] inline void broken(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
  std::string shown;
  for (char c : context()) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\n') shown += "\\n\n";
    else if (c == '\r') shown += "\\r";
    else if (u < 0x20 || u >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      shown += hex;
    } else {
      shown += c;
    }
  }
  std::fprintf(stderr, "--- produced:\n%s\n---\n", shown.c_str());
  std::abort();
}

#define FUZZ_CHECK(cond)                                           \
  do {                                                             \
    if (!(cond)) ::sluice::fuzz::broken(__FILE__, __LINE__, #cond); \
  } while (0)

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// One message as a strict HTTP/1.1 peer sees it.
struct Reparsed {
  llhttp_errno_t err = HPE_OK;
  size_t used = 0;           // bytes up to the end of the first message
  int messages = 0;          // completed messages (parsing stops after the first)
  bool head_done = false;
  bool upgrade = false;
  int status = 0;
  std::string method;
  std::string target;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& [k, v] : headers) n += same_name(k, name) ? 1 : 0;
    return n;
  }
  std::string_view value(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (same_name(k, name)) return v;
    return {};
  }
};

namespace detail {

struct Reparser {
  Reparsed out;
  bool in_value = false;
  bool head_response = false;

  static Reparser& of(llhttp_t* p) { return *static_cast<Reparser*>(p->data); }
  static int on_method(llhttp_t* p, const char* at, size_t n) {
    of(p).out.method.append(at, n);
    return 0;
  }
  static int on_url(llhttp_t* p, const char* at, size_t n) {
    of(p).out.target.append(at, n);
    return 0;
  }
  static int on_status(llhttp_t* p, const char* at, size_t n) {
    of(p).out.reason.append(at, n);
    return 0;
  }
  static int on_field(llhttp_t* p, const char* at, size_t n) {
    Reparser& r = of(p);
    if (r.in_value || r.out.headers.empty()) r.out.headers.emplace_back();
    r.in_value = false;
    r.out.headers.back().first.append(at, n);
    return 0;
  }
  static int on_value(llhttp_t* p, const char* at, size_t n) {
    Reparser& r = of(p);
    r.in_value = true;
    r.out.headers.back().second.append(at, n);
    return 0;
  }
  static int on_headers_complete(llhttp_t* p) {
    Reparser& r = of(p);
    r.out.head_done = true;
    r.out.status = p->status_code;
    r.out.upgrade = p->upgrade != 0;
    // RFC 9112 §6.3: a 304 ends with its head, and may carry the framing
    // headers of the response it stands for; llhttp 8 itself would read
    // them as this response's. (A 204 is left to llhttp: sluice must not
    // send it framing headers at all.)
    const bool bodiless = p->type == HTTP_RESPONSE && p->status_code == 304;
    return r.head_response || bodiless ? 1 : 0;
  }
  static int on_body(llhttp_t* p, const char* at, size_t n) {
    of(p).out.body.append(at, n);
    return 0;
  }
  static int on_complete(llhttp_t* p) {
    ++of(p).out.messages;
    return p->upgrade ? 0 : HPE_PAUSED;  // stop: what follows is not this message
  }
};

}  // namespace detail

// Parses `bytes` as one request or response, strictly (no lenient flag).
// `head_response`: the response to a HEAD request (no body). `eof`: the
// sender closes after these bytes (ends a close-delimited body).
inline Reparsed reparse(llhttp_type_t type, std::string_view bytes, bool head_response = false,
                        bool eof = false) {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_method = &detail::Reparser::on_method;
    s.on_url = &detail::Reparser::on_url;
    s.on_status = &detail::Reparser::on_status;
    s.on_header_field = &detail::Reparser::on_field;
    s.on_header_value = &detail::Reparser::on_value;
    s.on_headers_complete = &detail::Reparser::on_headers_complete;
    s.on_body = &detail::Reparser::on_body;
    s.on_message_complete = &detail::Reparser::on_complete;
    return s;
  }();
  detail::Reparser r;
  r.head_response = head_response;
  llhttp_t parser;
  llhttp_init(&parser, type, &settings);
  parser.data = &r;
  r.out.err = llhttp_execute(&parser, bytes.data(), bytes.size());
  r.out.used = bytes.size();
  if (r.out.err == HPE_PAUSED || r.out.err == HPE_PAUSED_UPGRADE) {
    r.out.used = static_cast<size_t>(llhttp_get_error_pos(&parser) - bytes.data());
  } else if (r.out.err == HPE_OK && eof) {
    r.out.err = llhttp_finish(&parser);
  }
  return std::move(r.out);
}

// RFC 9110 tchar, written out again here rather than taken from the code
// under test.
inline bool tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A field value sluice may emit (RFC 9110 §5.5): no control character
// but HTAB.
inline bool clean_field_value(std::string_view v) {
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

// Every line of a head sluice wrote: "name: value" with a token name, a
// value without CR/LF/CTL, no obs-fold, ending in an empty line. Returns
// the number of header lines, or -1.
inline int check_head_lines(std::string_view head) {
  size_t end = head.find("\r\n\r\n");
  if (end == std::string_view::npos || end + 4 != head.size()) return -1;
  std::string_view lines = head.substr(0, end + 2);
  size_t eol = lines.find("\r\n");
  lines.remove_prefix(eol + 2);  // the start line is checked by the caller
  int n = 0;
  while (!lines.empty()) {
    eol = lines.find("\r\n");
    std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return -1;
    for (char c : line.substr(0, colon))
      if (!tchar(c)) return -1;
    std::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (!clean_field_value(value) || line.find('\n') != std::string_view::npos ||
        line.find('\r') != std::string_view::npos) {
      return -1;
    }
    ++n;
  }
  return n;
}

}  // namespace sluice::fuzz
