#include "proxy/upstream_connection.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "core/busy_poll.h"
#include "proxy/upstream_link.h"

namespace sluice::proxy {

const char* to_string(UpstreamError e) {
  switch (e) {
    case UpstreamError::ConnectFailed: return "connect failed";
    case UpstreamError::ConnectTimeout: return "connect timeout";
    case UpstreamError::ClosedEarly: return "closed before responding";
    case UpstreamError::BadResponse: return "invalid response";
    case UpstreamError::ResponseTimeout: return "response timeout";
    case UpstreamError::Truncated: return "closed mid-response";
  }
  return "?";
}

UpstreamConnection::UpstreamConnection(UpstreamLink* link, UpstreamServer* server,
                                       UpstreamUser* user)
    : link_(link), server_(server), user_(user), writer_(this, &UpstreamConnection::on_written) {
  uv_tcp_init(link->loop(), &tcp_);
  tcp_.data = this;
  timer_.owner = this;
  connect_req_.data = this;
  parser_.start(*this, false, false);
}

UpstreamConnection* UpstreamConnection::connect(UpstreamLink* link, UpstreamServer* server,
                                                UpstreamUser* user) {
  auto* c = new UpstreamConnection(link, server, user);
  c->busy_ = true;
  link->busy_started();
  const auto& addr = server->endpoint();
  int rc = uv_tcp_connect(&c->connect_req_, &c->tcp_, addr.sa(), &UpstreamConnection::on_connect);
  if (rc != 0) {
    spdlog::warn("upstream {}: connect to {}: {}", link->config().name, addr.text, uv_strerror(rc));
    c->user_ = nullptr;
    c->close();
    return nullptr;
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  c->arm_timer(link->config().timeouts.connect);
  return c;
}

void UpstreamConnection::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<UpstreamConnection*>(req->data);
  if (self->state_ == State::Closing) return;  // aborted while connecting
  if (status != 0) {
    spdlog::warn("upstream {}: connect to {}: {}", self->link_->config().name,
                 self->server_->address(), uv_strerror(status));
    self->fail(UpstreamError::ConnectFailed);
    return;
  }
  self->link_->timers().cancel(self->timer_);
  self->state_ = State::Active;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&self->tcp_), &UpstreamConnection::on_alloc,
                &UpstreamConnection::on_read);
  self->user_->on_upstream_ready();
}

void UpstreamConnection::attach(UpstreamUser* user) {
  busy_ = true;
  link_->busy_started();
  user_ = user;
  state_ = State::Active;
  link_->timers().cancel(timer_);
}

void UpstreamConnection::begin_request(bool head_request, bool upgrade) {
  ++requests_;
  request_sent_ = false;
  response_bytes_ = 0;
  parser_.start(*this, head_request, upgrade);
  arm_timer(link_->config().timeouts.response);
}

int UpstreamConnection::send(const uv_buf_t* bufs, unsigned n) {
  return writer_.write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, n);
}

int UpstreamConnection::send(std::string_view bytes) {
  return writer_.write(reinterpret_cast<uv_stream_t*>(&tcp_), bytes);
}

void UpstreamConnection::request_sent() {
  request_sent_ = true;
  if (BusyPoll* bp = link_->busy_poll()) bp->kick();  // the response is due
}

void UpstreamConnection::pause_reading() {
  if (reading_paused_ || state_ == State::Closing) return;
  reading_paused_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  link_->timers().cancel(timer_);  // a slow client is not a slow app
}

void UpstreamConnection::resume_reading() {
  if (!reading_paused_ || state_ == State::Closing) return;
  reading_paused_ = false;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &UpstreamConnection::on_alloc,
                &UpstreamConnection::on_read);
  if (state_ == State::Active) arm_timer(link_->config().timeouts.response);
}

void UpstreamConnection::start_tunnel() {
  state_ = State::Tunnel;
  link_->timers().cancel(timer_);
  // Bytes that followed the 101 head in the same read belong to the tunnel.
  if (!in_.empty()) {
    auto rest = in_.readable();
    in_.consume(rest.size());
    user_->on_upstream_tunnel_data(rest.data(), rest.size());
  }
}

void UpstreamConnection::abort() {
  user_ = nullptr;
  close();
}

void UpstreamConnection::arm_timer(config::Duration d) { link_->timers().arm(timer_, d); }

void UpstreamConnection::on_timeout(DeadlineNode* node) {
  auto* self = static_cast<UpstreamConnection*>(node->owner);
  switch (self->state_) {
    case State::Connecting: self->fail(UpstreamError::ConnectTimeout); break;
    case State::Active: self->fail(UpstreamError::ResponseTimeout); break;
    case State::Idle:
      self->link_->forget_idle(self);
      self->close();
      break;
    case State::Tunnel:
    case State::Closing: break;
  }
}

void UpstreamConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<UpstreamConnection*>(h->data);
  *buf = self->in_.writable();
}

void UpstreamConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<UpstreamConnection*>(s->data);
  if (nread == 0) return;
  if (self->state_ == State::Idle) {
    // The server spoke or hung up on an idle connection: it cannot carry
    // a request any more.
    self->link_->forget_idle(self);
    self->close();
    return;
  }
  if (nread < 0) {
    if (self->state_ == State::Tunnel) {
      self->fail(UpstreamError::Truncated);
      return;
    }
    // EOF ends a close-delimited body; anything else is a failure.
    if (nread == UV_EOF && self->parser_.finish_at_eof()) {
      self->finish_response();
      return;
    }
    if (self->parser_.done()) return;  // already complete; close follows
    self->fail(self->response_bytes_ == 0 ? UpstreamError::ClosedEarly : UpstreamError::Truncated);
    return;
  }
  self->in_.commit(static_cast<size_t>(nread));
  if (self->state_ == State::Tunnel) {
    auto data = self->in_.readable();
    self->in_.consume(data.size());
    self->user_->on_upstream_tunnel_data(data.data(), data.size());
    return;
  }
  if (self->state_ != State::Active) return;
  self->response_bytes_ += static_cast<uint64_t>(nread);
  auto data = self->in_.readable();
  self->on_data(data.data(), data.size());
}

void UpstreamConnection::on_data(const char* data, size_t len) {
  // Everything one read produces (head, body pieces, the end) reaches the
  // client as one write: the user holds its writes until the batch ends.
  if (user_) user_->on_upstream_batch(true);
  parse(data, len);
  if (user_) user_->on_upstream_batch(false);
}

void UpstreamConnection::parse(const char* data, size_t len) {
  if (parser_.done()) {
    // Bytes after a complete response: the server is misbehaving (or
    // pipelining junk). Never hand this connection to another request.
    in_.consume(len);
    if (user_ == nullptr) close();
    return;
  }
  arm_timer(link_->config().timeouts.response);
  ResponseStep step = parser_.execute({data, len});
  if (step.progress == ResponseProgress::Upgrade) {
    // A 101: what follows the head is already tunnel data.
    in_.consume(step.used);
    if (state_ == State::Active) start_tunnel();
    return;
  }
  if (state_ == State::Closing) return;  // a callback failed us
  if (step.progress == ResponseProgress::Done) {
    // Paused at message end: anything after it is junk (see above).
    in_.consume(len);
    finish_response();
    return;
  }
  in_.consume(len);
  if (step.progress != ResponseProgress::More) {
    spdlog::warn("upstream {}: {}: {}", link_->config().name,
                 server_->address(), step.error);
    fail(parser_.head_done() ? UpstreamError::Truncated : UpstreamError::BadResponse);
  }
}

void UpstreamConnection::finish_response() {
  UpstreamUser* user = user_;
  user_ = nullptr;
  if (std::exchange(busy_, false)) link_->busy_ended();  // before put_idle: it counts
  link_->timers().cancel(timer_);
  // An app that answered before reading the whole request (say, a 413)
  // leaves the connection mid-request: it cannot carry another one.
  bool reusable = request_sent_ && parser_.head().keep_alive && writer_.queued() == 0 && in_.empty() && !reading_paused_ &&
                  state_ == State::Active;
  if (reusable && link_->put_idle(this)) {
    state_ = State::Idle;
    in_.release_if_empty();
    arm_timer(link_->config().keepalive.idle_timeout);
  } else {
    close();
  }
  if (user) user->on_upstream_done();
}

void UpstreamConnection::fail(UpstreamError err) {
  UpstreamUser* user = user_;
  user_ = nullptr;
  close();
  if (user) user->on_upstream_error(err);
}

void UpstreamConnection::on_written(void* p, int status) {
  auto* self = static_cast<UpstreamConnection*>(p);
  if (self->state_ == State::Closing) return;
  if (status != 0) {
    self->fail(self->response_bytes_ == 0 ? UpstreamError::ClosedEarly : UpstreamError::Truncated);
    return;
  }
  if (self->user_ && self->writer_.queued() < 64 * 1024) self->user_->on_upstream_drained();
}

void UpstreamConnection::close() {
  if (state_ == State::Closing) return;
  state_ = State::Closing;
  if (std::exchange(busy_, false)) link_->busy_ended();
  link_->timers().cancel(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &UpstreamConnection::on_closed);
}

void UpstreamConnection::on_closed(uv_handle_t* h) {
  delete static_cast<UpstreamConnection*>(h->data);
}

// --- ResponseSink ----------------------------------------------------------

bool UpstreamConnection::on_response_head(ResponseHead& head) {
  user_->on_upstream_head(head);
  return state_ != State::Closing;
}

bool UpstreamConnection::on_response_body(const char* at, size_t len) {
  user_->on_upstream_body(at, len);
  return state_ != State::Closing;
}

}  // namespace sluice::proxy
