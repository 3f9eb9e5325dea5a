#include "proxy/admin.h"

#include <llhttp.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string_view>

#include "proxy/admin_page.h"
#include "proxy/listener.h"
#include "proxy/server.h"
#include "proxy/upstream_pool.h"

namespace sluice::proxy {

namespace {

// One admin request: read the head, answer, close. Owns its socket and
// frees itself in the close callback.
class AdminConnection {
 public:
  explicit AdminConnection(AdminServer& admin) : admin_(admin) {
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* p, const char* at, size_t len) {
      static_cast<AdminConnection*>(p->data)->url_.append(at, len);
      return 0;
    };
    settings_.on_headers_complete = [](llhttp_t* p) -> int {
      static_cast<AdminConnection*>(p->data)->head_done_ = true;
      return HPE_PAUSED;
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
  }

  bool accept(uv_stream_t* server) {
    uv_tcp_init(server->loop, &tcp_);
    tcp_.data = this;
    if (uv_accept(server, stream()) != 0) {
      close();
      return false;
    }
    uv_read_start(stream(), &on_alloc, &on_read);
    return true;
  }

 private:
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* self = static_cast<AdminConnection*>(h->data);
    *buf = uv_buf_init(self->in_, sizeof self->in_);
  }

  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = static_cast<AdminConnection*>(s->data);
    if (n == 0) return;
    if (n < 0 || self->responded_) {
      self->close();
      return;
    }
    llhttp_errno_t err = llhttp_execute(&self->parser_, buf->base, static_cast<size_t>(n));
    if (self->head_done_) {
      self->respond(llhttp_get_method(&self->parser_) == HTTP_GET);
    } else if (err != HPE_OK || self->url_.size() > 4096) {
      self->send(400, "text/plain", "bad request\n");
    }
  }

  void respond(bool is_get) {
    std::string_view path(url_);
    path = path.substr(0, path.find('?'));
    if (!is_get) {
      send(405, "text/plain", "only GET\n");
    } else if (path == "/metrics" || path == "/status") {
      // Every loop's counters first (io_threads): the answer comes once
      // they have all been copied. Nothing is read meanwhile, so nothing
      // closes this connection before it answers.
      uv_read_stop(stream());
      const bool metrics = path == "/metrics";
      admin_.collect([this, metrics](const LoopStats& all) {
        if (metrics) send(200, "text/plain; version=0.0.4", admin_.render_metrics(all));
        else send(200, "application/json", admin_.render_status(all));
      });
    }
    else if (path == "/") send(200, "text/html; charset=utf-8", std::string(admin_page_html()));
    else send(404, "text/plain", "try /, /metrics or /status\n");
  }

  void send(int status, const char* type, const std::string& body) {
    responded_ = true;
    uv_read_stop(stream());
    const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed" : "Bad Request";
    char head[256];
    int len = std::snprintf(head, sizeof head,
                            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                            status, reason, type, body.size());
    out_.assign(head, static_cast<size_t>(len));
    out_ += body;
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    write_.data = this;
    if (uv_write(&write_, stream(), &b, 1, [](uv_write_t* w, int) {
          static_cast<AdminConnection*>(w->data)->close();
        }) != 0) {
      close();
    }
  }

  void close() {
    if (closing_) return;
    closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
             [](uv_handle_t* h) { delete static_cast<AdminConnection*>(h->data); });
  }

  AdminServer& admin_;
  uv_tcp_t tcp_{};
  uv_write_t write_{};
  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  char in_[4096];
  std::string url_;
  std::string out_;
  bool head_done_ = false;
  bool responded_ = false;
  bool closing_ = false;
};

void append_labels(std::string& out, std::initializer_list<std::pair<const char*, std::string_view>> labels) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out.append(k);
    out.append("=\"");
    for (char c : v) {
      if (c == '"' || c == '\\') out.push_back('\\');
      if (c == '\n') {
        out.append("\\n");
        continue;
      }
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
}

void line(std::string& out, const char* name,
          std::initializer_list<std::pair<const char*, std::string_view>> labels, double value) {
  out.append(name);
  if (labels.size() > 0) append_labels(out, labels);
  char buf[64];
  std::snprintf(buf, sizeof buf, " %.17g\n", value);
  out.append(buf);
}

void help(std::string& out, const char* name, const char* type, const char* text) {
  out.append("# HELP ").append(name).append(" ").append(text).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void histogram(std::string& out, const std::string& name, const char* label, std::string_view value,
               const Histogram& h) {
  std::string bucket = name + "_bucket";
  for (size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    char le[32];
    std::snprintf(le, sizeof le, "%g", Histogram::kBounds[i]);
    line(out, bucket.c_str(), {{label, value}, {"le", le}}, static_cast<double>(h.cumulative(i)));
  }
  line(out, bucket.c_str(), {{label, value}, {"le", "+Inf"}}, static_cast<double>(h.count()));
  line(out, (name + "_sum").c_str(), {{label, value}}, h.sum_seconds());
  line(out, (name + "_count").c_str(), {{label, value}}, static_cast<double>(h.count()));
}

void json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

Result<std::unique_ptr<AdminServer>> AdminServer::start(uv_loop_t* loop,
                                                        const config::SocketAddress& address,
                                                        Server& server) {
  std::unique_ptr<AdminServer> admin(new AdminServer(server));
  auto tcp = UvHandle<uv_tcp_t>::create(uv_tcp_init, loop);
  if (!tcp) return unexpected("admin: " + tcp.error());
  admin->tcp_ = std::move(tcp).value();
  admin->tcp_->data = admin.get();
  int rc = uv_tcp_bind(admin->tcp_.get(), address.sa(), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(admin->tcp_.get()), 64,
                   &AdminServer::on_connection);
  }
  if (rc != 0) {
    return unexpected("admin: listen " + address.text + ": " + uv_strerror(rc));
  }
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getsockname(admin->tcp_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  admin->bound_ = socket_name(ss);
  spdlog::info("admin listening on {}", admin->bound_);
  return admin;
}

AdminServer::~AdminServer() { tcp_.close(); }

void AdminServer::on_connection(uv_stream_t* s, int status) {
  auto* self = static_cast<AdminServer*>(s->data);
  if (self == nullptr || status != 0) return;
  auto* conn = new AdminConnection(*self);
  conn->accept(s);  // frees itself on any failure
}

void AdminServer::collect(std::function<void(const LoopStats&)> done) {
  server_.collect_stats(std::move(done));
}

std::string AdminServer::render_metrics() const { return render_metrics(server_.stats()); }
std::string AdminServer::render_status() const { return render_status(server_.stats()); }

std::string AdminServer::render_metrics(const LoopStats& all) const {
  const Metrics& m = all.metrics;
  std::string out;
  out.reserve(8192);
  static const char* kClass[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

  help(out, "sluice_requests_total", "counter",
       "Requests answered, by route and status class (none: the client left first).");
  for (const auto& [route, rm] : m.routes) {
    for (size_t c = 0; c < rm.by_class.size(); ++c) {
      if (rm.by_class[c] == 0) continue;
      line(out, "sluice_requests_total", {{"route", route}, {"class", kClass[c]}},
           static_cast<double>(rm.by_class[c]));
    }
  }
  help(out, "sluice_request_duration_seconds", "histogram",
       "Time from a request's first byte to its last response byte queued.");
  for (const auto& [route, rm] : m.routes) {
    histogram(out, "sluice_request_duration_seconds", "route", route, rm.duration);
  }
  help(out, "sluice_response_body_bytes_total", "counter", "Response body bytes sent to clients.");
  line(out, "sluice_response_body_bytes_total", {}, static_cast<double>(m.response_body_bytes));
  help(out, "sluice_connections_accepted_total", "counter", "Client connections accepted.");
  line(out, "sluice_connections_accepted_total", {}, static_cast<double>(m.connections_accepted));
  help(out, "sluice_loop_connections_accepted_total", "counter",
       "Client connections accepted, by event loop (io_threads; 0 is the first).");
  for (const auto& [loop, n] : all.accepted_by_loop) {
    line(out, "sluice_loop_connections_accepted_total", {{"loop", std::to_string(loop)}},
         static_cast<double>(n));
  }
  help(out, "sluice_connections_open", "gauge", "Client connections open now.");
  line(out, "sluice_connections_open", {}, static_cast<double>(all.connections));
  help(out, "sluice_connections_refused_total", "counter",
       "Client connections accepted and closed at once: over max_connections, over "
       "max_connections_per_ip, or shed when out of file descriptors.");
  for (const auto& l : server_.listeners()) {
    auto it = all.refused.find(l->name());
    for (size_t r = 0; r < Listener::kRefusals; ++r) {
      line(out, "sluice_connections_refused_total",
           {{"listener", l->name()},
            {"reason", Listener::refusal_name(static_cast<Listener::Refusal>(r))}},
           static_cast<double>(it == all.refused.end() ? 0 : it->second[r]));
    }
  }
  help(out, "sluice_access_log_dropped_total", "counter",
       "Access-log lines dropped because the writer could not keep up.");
  line(out, "sluice_access_log_dropped_total", {}, static_cast<double>(all.access_log_dropped));
  const WorkerPoolStats& w = all.workers;
  help(out, "sluice_worker_jobs_total", "counter", "Request heads routed by the worker pool.");
  line(out, "sluice_worker_jobs_total", {}, static_cast<double>(w.delivered));
  help(out, "sluice_worker_jobs_on_loop_total", "counter",
       "Of those, run by the loop itself: within route_on_loop_us, or because no worker had "
       "taken them while busy polling.");
  line(out, "sluice_worker_jobs_on_loop_total", {}, static_cast<double>(w.assisted));
  help(out, "sluice_worker_job_seconds", "gauge",
       "Moving average of the time routing one request head takes; the loop routes heads "
       "itself only while this is at most 1/8 of route_on_loop_us.");
  line(out, "sluice_worker_job_seconds", {}, static_cast<double>(w.job_cost_ns) / 1e9);
  help(out, "sluice_busy_poll_spins_total", "counter",
       "Times the loop started polling instead of sleeping (busy_poll_us > 0).");
  line(out, "sluice_busy_poll_spins_total", {}, static_cast<double>(all.busy_poll_spins));
  help(out, "sluice_busy_poll_seconds_total", "counter",
       "Wall time the loop polled instead of sleeping (busy_poll_us > 0): at most the CPU polling cost.");
  line(out, "sluice_busy_poll_seconds_total", {}, static_cast<double>(all.busy_poll_ns) / 1e9);

  // Each pool copied once, under its lock, so the figures of one scrape agree.
  std::vector<std::pair<std::string, PoolView>> views;
  for (const auto& [name, link] : server_.links()) views.emplace_back(name, link->pool().view());
  auto per_server = [&](const char* metric, auto value) {
    for (const auto& [name, v] : views) {
      for (const ServerView& sv : v.servers) {
        line(out, metric, {{"upstream", name}, {"server", sv.address}},
             static_cast<double>(value(sv)));
      }
    }
  };
  help(out, "sluice_upstream_in_flight", "gauge", "Requests at each server now.");
  per_server("sluice_upstream_in_flight", [](const ServerView& sv) { return sv.in_flight; });
  help(out, "sluice_upstream_limit", "gauge",
       "Requests a server may hold now (0: no limit): the configured or learned limit, "
       "lowered by backpressure and slow start.");
  per_server("sluice_upstream_limit", [](const ServerView& sv) { return sv.limit; });
  help(out, "sluice_upstream_limit_configured", "gauge",
       "max_concurrent as configured (the ceiling when it is auto; 0: no limit).");
  per_server("sluice_upstream_limit_configured",
             [](const ServerView& sv) { return sv.limit_configured; });
  help(out, "sluice_upstream_limit_learned", "gauge",
       "The limit learned from latency for max_concurrent: auto (0: not adaptive).");
  per_server("sluice_upstream_limit_learned", [](const ServerView& sv) { return sv.limit_learned; });
  help(out, "sluice_upstream_ejections_total", "counter",
       "Times a server was taken out of use after failures in a row.");
  per_server("sluice_upstream_ejections_total", [](const ServerView& sv) { return sv.ejections; });
  help(out, "sluice_upstream_healthy", "gauge", "1 if the server is in use.");
  per_server("sluice_upstream_healthy", [](const ServerView& sv) { return sv.healthy ? 1 : 0; });
  help(out, "sluice_upstream_queue_depth", "gauge", "Requests waiting for a free server slot.");
  for (const auto& [name, v] : views) {
    line(out, "sluice_upstream_queue_depth", {{"upstream", name}},
         static_cast<double>(v.queue_length));
  }
  help(out, "sluice_upstream_shed_total", "counter",
       "Requests answered 503 without reaching the app, by reason.");
  help(out, "sluice_upstream_retries_total", "counter", "Requests retried on another attempt.");
  help(out, "sluice_upstream_retry_budget_denied_total", "counter",
       "Retries not made: over the retry budget, or the queue was full.");
  help(out, "sluice_upstream_retry_budget_available", "gauge",
       "Retries the budget allows now (20 % of requests plus a floor per second, by default).");
  help(out, "sluice_upstream_service_seconds", "gauge",
       "Smoothed time from taking a slot to the complete response.");
  help(out, "sluice_upstream_drain_per_second", "gauge",
       "Smoothed completions per second; Retry-After is the queue over this rate.");
  help(out, "sluice_upstream_queue_wait_seconds", "histogram",
       "Time queued requests waited for a slot.");
  for (const auto& [name, v] : views) {
    auto it = m.upstreams.find(name);
    UpstreamMetrics none;
    const UpstreamMetrics& um = it == m.upstreams.end() ? none : it->second;
    for (size_t r = 0; r < um.shed.size(); ++r) {
      line(out, "sluice_upstream_shed_total",
           {{"upstream", name}, {"reason", to_string(static_cast<ShedReason>(r))}},
           static_cast<double>(um.shed[r]));
    }
    line(out, "sluice_upstream_retries_total", {{"upstream", name}},
         static_cast<double>(um.retries));
    line(out, "sluice_upstream_retry_budget_denied_total", {{"upstream", name}},
         static_cast<double>(um.retries_denied));
    line(out, "sluice_upstream_retry_budget_available", {{"upstream", name}},
         static_cast<double>(v.retry_budget));
    line(out, "sluice_upstream_service_seconds", {{"upstream", name}},
         static_cast<double>(v.service_ns) / 1e9);
    line(out, "sluice_upstream_drain_per_second", {{"upstream", name}}, v.drain_per_second);
    histogram(out, "sluice_upstream_queue_wait_seconds", "upstream", name, um.queue_wait);
  }
  return out;
}

std::string AdminServer::render_status(const LoopStats& all) const {
  std::string out = "{\"version\":";
  json_string(out, SLUICE_VERSION);
  out += ",\"connections\":" + std::to_string(all.connections);
  out += ",\"draining\":";
  out += server_.draining() ? "true" : "false";
  out += ",\"listeners\":[";
  bool first = true;
  for (const auto& l : server_.listeners()) {
    if (!first) out += ",";
    first = false;
    out += "{\"name\":";
    json_string(out, l->name());
    out += ",\"address\":";
    json_string(out, l->bound());
    out += ",\"connections\":" + std::to_string(l->active()) + "}";
  }
  out += "],\"routes\":[";
  first = true;
  for (const auto& [route, rm] : all.metrics.routes) {
    if (!first) out += ",";
    first = false;
    uint64_t total = 0;
    for (uint64_t n : rm.by_class) total += n;
    out += "{\"name\":";
    json_string(out, route);
    out += ",\"requests\":" + std::to_string(total);
    out += ",\"2xx\":" + std::to_string(rm.by_class[2]);
    out += ",\"4xx\":" + std::to_string(rm.by_class[4]);
    out += ",\"5xx\":" + std::to_string(rm.by_class[5]);
    char sum[32];
    std::snprintf(sum, sizeof sum, "%.6f", rm.duration.sum_seconds());
    out += ",\"duration_sum\":";
    out += sum;
    out += ",\"duration_count\":" + std::to_string(rm.duration.count()) + "}";
  }
  out += "],\"upstreams\":[";
  first = true;
  for (const auto& [name, link] : server_.links()) {
    const PoolView v = link->pool().view();
    if (!first) out += ",";
    first = false;
    out += "{\"name\":";
    json_string(out, name);
    out += ",\"queue_depth\":" + std::to_string(v.queue_length);
    uint64_t shed = 0;
    if (auto it = all.metrics.upstreams.find(name); it != all.metrics.upstreams.end()) {
      for (uint64_t n : it->second.shed) shed += n;
    }
    out += ",\"shed\":" + std::to_string(shed);
    auto idle = all.idle.find(name);
    out += ",\"idle_connections\":" + std::to_string(idle == all.idle.end() ? 0 : idle->second);
    out += ",\"retry_after\":" + std::to_string(v.retry_after);
    out += ",\"service_ms\":" + std::to_string(v.service_ns / 1'000'000);
    out += ",\"servers\":[";
    for (size_t i = 0; i < v.servers.size(); ++i) {
      const ServerView& sv = v.servers[i];
      if (i > 0) out += ",";
      out += "{\"address\":";
      json_string(out, sv.address);
      out += ",\"in_flight\":" + std::to_string(sv.in_flight);
      out += ",\"limit\":" + std::to_string(sv.limit);
      out += ",\"limit_configured\":" + std::to_string(sv.limit_configured);
      out += ",\"limit_learned\":" + std::to_string(sv.limit_learned);
      out += ",\"healthy\":";
      out += sv.healthy ? "true" : "false";
      out += ",\"health\":";
      json_string(out, to_string(sv.health));
      out += "}";
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace sluice::proxy
