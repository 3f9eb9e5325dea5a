#include "proxy/health_checker.h"

#include <algorithm>
#include <cstdio>

namespace sluice::proxy {

namespace {
// A server that sends this much without a complete status line is not
// answering HTTP; the timeout would end it anyway, this ends it sooner.
constexpr size_t kMaxBeforeStatus = 16 * 1024;

bool is_interim(int status) { return status >= 100 && status < 200 && status != 101; }
}  // namespace

HealthChecker* HealthChecker::start(uv_loop_t* loop, const config::HealthCheck& cfg,
                                    const std::vector<config::Server>& servers,
                                    HealthListener* listener,
                                    const std::vector<bool>& initial_healthy) {
  return new HealthChecker(loop, cfg, servers, listener, initial_healthy);
}

HealthChecker::HealthChecker(uv_loop_t* loop, const config::HealthCheck& cfg,
                             const std::vector<config::Server>& servers, HealthListener* listener,
                             const std::vector<bool>& initial_healthy)
    : loop_(loop), cfg_(cfg), listener_(listener) {
  // The loop's clock may be stale (set when the current iteration began);
  // the first offsets and every later deadline count from now.
  uv_update_time(loop_);
  const auto interval = static_cast<uint64_t>(cfg_.interval.count());
  const size_t n = servers.size();
  targets_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto t = std::make_unique<Target>();
    t->owner = this;
    t->index = i;
    t->address = servers[i].address;
    t->request = "GET " + cfg_.path + " HTTP/1.1\r\nHost: " + t->address.text +
                 "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n";
    t->healthy = i < initial_healthy.size() ? initial_healthy[i] : true;
    uv_timer_init(loop_, &t->timer);
    t->timer.data = t.get();
    ++open_handles_;
    uv_timer_start(&t->timer, &HealthChecker::on_timer, interval * i / n, 0);
    targets_.push_back(std::move(t));
  }
}

const llhttp_settings_t& HealthChecker::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_status_complete = &HealthChecker::on_status_complete;
    return s;
  }();
  return settings;
}

void HealthChecker::begin_probe(Target& t) {
  t.started = uv_now(loop_);
  t.read_bytes = 0;
  llhttp_init(&t.parser, HTTP_RESPONSE, &parser_settings());
  t.parser.data = &t;
  int rc = uv_tcp_init(loop_, &t.tcp);
  if (rc != 0) {
    fail(t, "socket", rc);
    return;
  }
  t.tcp.data = &t;
  t.tcp_open = true;
  ++open_handles_;
  t.phase = Phase::Connecting;
  uv_timer_start(&t.timer, &HealthChecker::on_timer, static_cast<uint64_t>(cfg_.timeout.count()),
                 0);
  t.connect_req.data = &t;
  rc = uv_tcp_connect(&t.connect_req, &t.tcp, t.address.sa(), &HealthChecker::on_connect);
  if (rc != 0) fail(t, "connect", rc);
}

void HealthChecker::on_timer(uv_timer_t* timer) {
  auto& t = *static_cast<Target*>(timer->data);
  HealthChecker& self = *t.owner;
  char why[96];
  switch (t.phase) {
    case Phase::Waiting: self.begin_probe(t); break;
    case Phase::Connecting:
      std::snprintf(why, sizeof why, "no connection within %lldms",
                    static_cast<long long>(self.cfg_.timeout.count()));
      self.fail(t, why);
      break;
    case Phase::Awaiting:
      std::snprintf(why, sizeof why, "no status line within %lldms",
                    static_cast<long long>(self.cfg_.timeout.count()));
      self.fail(t, why);
      break;
    case Phase::Closing:
    case Phase::Stopped: break;
  }
}

void HealthChecker::on_connect(uv_connect_t* req, int status) {
  auto& t = *static_cast<Target*>(req->data);
  if (t.phase != Phase::Connecting) return;  // timed out or stopped: the close cancelled us
  HealthChecker& self = *t.owner;
  if (status != 0) {
    self.fail(t, "connect", status);
    return;
  }
  t.phase = Phase::Awaiting;
  auto* stream = reinterpret_cast<uv_stream_t*>(&t.tcp);
  uv_tcp_nodelay(&t.tcp, 1);
  uv_buf_t buf = uv_buf_init(t.request.data(), static_cast<unsigned>(t.request.size()));
  t.write_req.data = &t;
  int rc = uv_write(&t.write_req, stream, &buf, 1, &HealthChecker::on_written);
  if (rc != 0) {
    self.fail(t, "send", rc);
    return;
  }
  rc = uv_read_start(stream, &HealthChecker::on_alloc, &HealthChecker::on_read);
  if (rc != 0) self.fail(t, "read", rc);
}

void HealthChecker::on_written(uv_write_t* req, int status) {
  auto& t = *static_cast<Target*>(req->data);
  if (t.phase != Phase::Awaiting || status == 0) return;
  t.owner->fail(t, "send", status);
}

void HealthChecker::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto& self = *static_cast<Target*>(h->data)->owner;
  *buf = uv_buf_init(self.read_buf_.data(), static_cast<unsigned>(self.read_buf_.size()));
}

void HealthChecker::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto& t = *static_cast<Target*>(s->data);
  if (t.phase != Phase::Awaiting || nread == 0) return;
  HealthChecker& self = *t.owner;
  if (nread == UV_EOF) {
    self.fail(t, "closed before a status line");
    return;
  }
  if (nread < 0) {
    self.fail(t, "read", static_cast<int>(nread));
    return;
  }
  t.read_bytes += static_cast<size_t>(nread);
  llhttp_errno_t err = llhttp_execute(&t.parser, buf->base, static_cast<size_t>(nread));
  if (err == HPE_PAUSED) {
    // on_status_complete stopped at a final status; nothing else matters.
    int status = t.parser.status_code;
    if (status >= 200 && status < 400) {
      self.succeed(t, status);
    } else {
      char why[32];
      std::snprintf(why, sizeof why, "status %d", status);
      self.fail(t, why);
    }
    return;
  }
  if (err != HPE_OK) {
    char why[128];
    std::snprintf(why, sizeof why, "not an HTTP response: %s", llhttp_get_error_reason(&t.parser));
    self.fail(t, why);
    return;
  }
  if (t.read_bytes > kMaxBeforeStatus) self.fail(t, "no status line in the first 16 KiB");
}

int HealthChecker::on_status_complete(llhttp_t* p) {
  // A 100 or 103 precedes the real answer; llhttp parses on to it.
  return is_interim(p->status_code) ? 0 : HPE_PAUSED;
}

void HealthChecker::succeed(Target& t, int status) {
  end_probe(t);
  t.failures = 0;
  t.successes = std::min(t.successes + 1, cfg_.healthy_after);
  if (t.healthy || t.successes < cfg_.healthy_after) return;
  t.healthy = true;
  char why[32];
  std::snprintf(why, sizeof why, "status %d", status);
  // Last: the listener may stop us.
  if (listener_) listener_->on_health_change(t.index, true, why);
}

void HealthChecker::fail(Target& t, const char* what, int uv_err) {
  end_probe(t);
  t.last_failure = what;
  if (uv_err != 0) {
    t.last_failure += ": ";
    t.last_failure += uv_strerror(uv_err);
  }
  t.successes = 0;
  t.failures = std::min(t.failures + 1, cfg_.unhealthy_after);
  if (!t.healthy || t.failures < cfg_.unhealthy_after) return;
  t.healthy = false;
  if (listener_) listener_->on_health_change(t.index, false, t.last_failure.c_str());
}

void HealthChecker::end_probe(Target& t) {
  ++t.probes;
  uv_timer_stop(&t.timer);
  if (t.tcp_open) {
    // The next probe is scheduled from the close callback: the socket's
    // memory is reused, so it must be fully closed first.
    t.phase = Phase::Closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&t.tcp), &HealthChecker::on_tcp_closed);
  } else {
    schedule_next(t);
  }
}

void HealthChecker::schedule_next(Target& t) {
  t.phase = Phase::Waiting;
  const uint64_t due = t.started + static_cast<uint64_t>(cfg_.interval.count());
  const uint64_t now = uv_now(loop_);
  uv_timer_start(&t.timer, &HealthChecker::on_timer, due > now ? due - now : 0, 0);
}

void HealthChecker::on_tcp_closed(uv_handle_t* h) {
  auto& t = *static_cast<Target*>(h->data);
  HealthChecker& self = *t.owner;
  t.tcp_open = false;
  if (self.stopping_) {
    self.closed_one();
    return;
  }
  --self.open_handles_;
  self.schedule_next(t);
}

void HealthChecker::on_timer_closed(uv_handle_t* h) {
  static_cast<Target*>(h->data)->owner->closed_one();
}

void HealthChecker::closed_one() {
  if (--open_handles_ == 0) delete this;
}

void HealthChecker::stop() {
  if (stopping_) return;
  stopping_ = true;
  listener_ = nullptr;
  for (auto& tp : targets_) {
    Target& t = *tp;
    uv_close(reinterpret_cast<uv_handle_t*>(&t.timer), &HealthChecker::on_timer_closed);
    // A socket already Closing has its callback on the way; count it there.
    if (t.tcp_open && t.phase != Phase::Closing) {
      uv_close(reinterpret_cast<uv_handle_t*>(&t.tcp), &HealthChecker::on_tcp_closed);
    }
    t.phase = Phase::Stopped;
  }
  if (open_handles_ == 0) delete this;  // no servers: no callback will come
}

}  // namespace sluice::proxy
