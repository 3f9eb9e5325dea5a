#include "config/dump.h"

#include <algorithm>

#include "config/strings.h"
#include "config/units.h"

namespace sluice::config {
namespace {

std::string display(std::string_view s) {
  bool plain =
      !s.empty() && s.front() != ' ' && s.back() != ' ' && s.front() != '"' &&
      std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  return plain ? std::string(s) : quoted(s);
}

std::string display(const std::vector<std::string>& items) {
  std::vector<std::string> shown;
  for (const auto& item : items) shown.push_back(display(item));
  return "[" + join(shown) + "]";
}

std::string display(const HeaderList& headers) {
  std::vector<std::string> shown;
  for (const auto& [name, value] : headers) shown.push_back(name + ": " + display(value));
  return "{" + join(shown) + "}";
}

std::string_view path_key(PathMatch kind) {
  switch (kind) {
    case PathMatch::Exact: return "path_exact";
    case PathMatch::Prefix: return "path_prefix";
    case PathMatch::Regex: return "path_regex";
    case PathMatch::Any: break;
  }
  return "";
}

// Appends "prefix.key = value" lines.
class Lines {
 public:
  explicit Lines(std::vector<std::pair<std::string, std::string>>& out, std::string prefix = "")
      : out_(out), prefix_(std::move(prefix)) {}

  Lines under(std::string_view key) const { return Lines(out_, prefix_ + std::string(key) + "."); }

  void add(std::string_view key, std::string value) const {
    out_.emplace_back(prefix_ + std::string(key), std::move(value));
  }
  void add(std::string_view key, Duration d) const { add(key, format_duration(d)); }
  void add(std::string_view key, uint32_t n) const { add(key, std::to_string(n)); }
  void add_size(std::string_view key, uint64_t bytes) const { add(key, format_size(bytes)); }
  void add_text(std::string_view key, std::string_view s) const { add(key, display(s)); }
  void add_if_any(std::string_view key, const std::vector<std::string>& items) const {
    if (!items.empty()) add(key, display(items));
  }
  void add_if_any(std::string_view key, const HeaderList& headers) const {
    if (!headers.empty()) add(key, display(headers));
  }
  void add_if_any(std::string_view key, std::string_view s) const {
    if (!s.empty()) add_text(key, s);
  }

 private:
  std::vector<std::pair<std::string, std::string>>& out_;
  std::string prefix_;
};

void flatten_listener(const Lines& out, const Listener& l) {
  out.add_text("name", l.name);
  out.add("listen", l.listen.text);
  out.add("max_connections", l.max_connections);
  out.add("max_connections_per_ip", l.max_connections_per_ip);
  out.add("encoded_slashes", std::string(to_string(l.encoded_slashes)));
  Lines timeouts = out.under("timeouts");
  timeouts.add("header", l.timeouts.header);
  timeouts.add("body", l.timeouts.body);
  timeouts.add("idle", l.timeouts.idle);
  timeouts.add("send", l.timeouts.send);
  Lines limits = out.under("limits");
  limits.add_size("max_header_bytes", l.limits.max_header_bytes);
  limits.add_size("max_body_bytes", l.limits.max_body_bytes);
}

void flatten_header_edits(const Lines& out, const HeaderEdits& edits) {
  out.add_if_any("set", edits.set);
  out.add_if_any("remove", edits.remove);
}

void flatten_route(const Lines& out, const Route& r, const Config& config) {
  out.add_text("name", r.name);
  Lines match = out.under("match");
  match.add_if_any("host", r.match.host);
  if (r.match.path_kind != PathMatch::Any) match.add_text(path_key(r.match.path_kind), r.match.path);
  match.add_if_any("methods", r.match.methods);
  match.add_if_any("headers", r.match.headers);
  if (r.upstream) out.add_text("upstream", config.upstreams.at(*r.upstream).name);
  if (r.respond) {
    Lines respond = out.under("respond");
    respond.add("status", r.respond->status);
    respond.add_text("body", r.respond->body);
    respond.add_if_any("headers", r.respond->headers);
  }
  Lines rewrite = out.under("rewrite");
  rewrite.add_if_any("strip_prefix", r.rewrite.strip_prefix);
  rewrite.add_if_any("add_prefix", r.rewrite.add_prefix);
  flatten_header_edits(out.under("request_headers"), r.request_headers);
  flatten_header_edits(out.under("response_headers"), r.response_headers);
  out.add("priority", std::string(to_string(r.priority)));
  out.add("buffer_request", std::string(r.buffer_request ? "true" : "false"));
  out.add("buffer_response", std::string(r.buffer_response ? "true" : "false"));
}

void flatten_upstream(const Lines& out, const Upstream& u) {
  for (size_t i = 0; i < u.servers.size(); ++i) {
    Lines server = out.under("servers[" + std::to_string(i) + "]");
    server.add("address", u.servers[i].address.text);
    server.add("weight", u.servers[i].weight);
    if (!u.servers[i].adaptive) server.add("max_concurrent", u.servers[i].max_concurrent);
    else if (u.servers[i].max_concurrent == kAdaptiveCeiling) server.add("max_concurrent", std::string("auto"));
    else server.add("max_concurrent", "{ auto: true, max: " + std::to_string(u.servers[i].max_concurrent) + " }");
  }
  out.add("balance", std::string(to_string(u.balance)));
  out.under("queue").add("max_length", u.queue.max_length);
  out.under("queue").add("timeout", u.queue.timeout);
  out.under("queue").add("mode", std::string(to_string(u.queue.mode)));
  out.under("queue").add("interval", u.queue.interval);
  out.under("queue").add("target", u.queue.target);
  if (u.queue.deadline_header.empty()) out.under("queue").add_text("deadline_header", "");
  else out.under("queue").add("deadline_header", u.queue.deadline_header);
  out.under("keepalive").add("max_idle", u.keepalive.max_idle);
  out.under("keepalive").add("idle_timeout", u.keepalive.idle_timeout);
  out.under("timeouts").add("connect", u.timeouts.connect);
  out.under("timeouts").add("response", u.timeouts.response);
  out.under("retries").add("attempts", u.retries.attempts);
  out.under("retries").add("budget_percent", u.retries.budget_percent);
  out.under("retries").add("budget_min_per_second", u.retries.budget_min_per_second);
  out.under("passive_health").add("failures", u.passive_health.failures);
  out.under("passive_health").add("ejection", u.passive_health.ejection);
  out.under("passive_health").add("max_ejection", u.passive_health.max_ejection);
  out.add("slow_start", u.slow_start);
  if (const auto& hc = u.health_check) {
    Lines health = out.under("health_check");
    health.add_text("path", hc->path);
    health.add("interval", hc->interval);
    health.add("timeout", hc->timeout);
    health.add("healthy_after", hc->healthy_after);
    health.add("unhealthy_after", hc->unhealthy_after);
  }
}

}  // namespace

std::vector<std::pair<std::string, std::string>> flatten(const Config& config) {
  std::vector<std::pair<std::string, std::string>> pairs;
  Lines out(pairs);
  out.add("workers", config.workers);
  out.add("io_threads", config.io_threads);
  out.add("busy_poll_us", config.busy_poll_us);
  out.add("route_on_loop_us", config.route_on_loop_us);
  out.add("drain_timeout", config.drain_timeout);
  for (size_t i = 0; i < config.listeners.size(); ++i)
    flatten_listener(out.under("listeners[" + std::to_string(i) + "]"), config.listeners[i]);
  for (size_t i = 0; i < config.routes.size(); ++i)
    flatten_route(out.under("routes[" + std::to_string(i) + "]"), config.routes[i], config);
  for (const auto& upstream : config.upstreams) flatten_upstream(out.under("upstreams." + upstream.name), upstream);
  if (config.admin.listen) out.add("admin.listen", config.admin.listen->text);
  Lines logging = out.under("logging");
  logging.add("level", std::string(to_string(config.logging.level)));
  logging.under("access_log").add_text("path", config.logging.access_log.path);
  logging.under("access_log").add("format", std::string(to_string(config.logging.access_log.format)));
  Lines buffering = out.under("buffering");
  buffering.add_size("request_memory", config.buffering.request_memory);
  buffering.add_size("response_memory", config.buffering.response_memory);
  buffering.add_text("temp_dir", config.buffering.temp_dir);
  buffering.add_size("max_response_file", config.buffering.max_response_file);
  return pairs;
}

}  // namespace sluice::config
