#include "tests/support/legacy_backend_http.h"

#include <strings.h>

#include <cstdio>

namespace sluice::test {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string legacy_reply_head(int status, const char* reason, uint64_t content_length,
                              bool keep_alive) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %llu\r\n%s\r\n",
                status, reason, static_cast<unsigned long long>(content_length),
                keep_alive ? "" : "Connection: close\r\n");
  return buf;
}

std::string legacy_reply(int status, const char* reason, std::string_view body, bool keep_alive) {
  std::string out = legacy_reply_head(status, reason, body.size(), keep_alive);
  out.append(body);
  return out;
}

std::string overloaded_reply() {
  return legacy_reply(503, "Service Unavailable", "app overloaded: request queue full\n", false);
}

std::optional<LocalAnswer> local_endpoint(std::string_view path, LegacyBackend& app,
                                          bool keep_alive) {
  LocalAnswer a;
  a.close = !keep_alive;
  if (path == "/stats") {
    a.bytes = legacy_reply(200, "OK", app.stats().json(app.options()), keep_alive);
  } else if (path == "/stats/reset") {
    app.stats().reset();
    a.bytes = legacy_reply(200, "OK", app.stats().json(app.options()), keep_alive);
  } else if (path == "/health") {
    a.bytes = app.health_down() ? legacy_reply(503, "Service Unavailable", "down\n", keep_alive)
                                : legacy_reply(200, "OK", "up\n", keep_alive);
  } else if (path == "/health/down" || path == "/health/up") {
    app.set_health_down(path == "/health/down");
    a.bytes = legacy_reply(200, "OK", app.health_down() ? "down\n" : "up\n", keep_alive);
  } else {
    return std::nullopt;
  }
  return a;
}

std::optional<LocalAnswer> local_answer(std::string_view head, LegacyBackend& app) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 <= sp1) return std::nullopt;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method != "GET" && method != "HEAD") return std::nullopt;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
  std::string_view path = target.substr(0, target.find('?'));

  bool keep_alive = version == "HTTP/1.1";
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest.remove_prefix(e + 2);
    size_t colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(h.substr(0, colon));
    std::string_view value = trim(h.substr(colon + 1));
    // A body, however unlikely on a GET, is for a worker to read.
    if (iequals(name, "transfer-encoding")) return std::nullopt;
    if (iequals(name, "content-length") && value != "0") return std::nullopt;
    if (iequals(name, "connection")) {
      if (iequals(value, "close")) keep_alive = false;
      if (iequals(value, "keep-alive")) keep_alive = true;
    }
  }
  auto a = local_endpoint(path, app, keep_alive);
  if (a && method == "HEAD") {
    // Same head, no body.
    a->bytes.resize(a->bytes.find("\r\n\r\n") + 4);
  }
  return a;
}

}  // namespace sluice::test
