#include "proxy/upstream_connection.h"

#include <spdlog/spdlog.h>

#include "proxy/upstream_pool.h"

namespace sluice::proxy {

namespace {
// A response head larger than this is not one a sane app sends.
constexpr size_t kMaxResponseHead = 64 * 1024;
}  // namespace

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

UpstreamConnection::UpstreamConnection(uv_loop_t* loop, UpstreamPool* pool, size_t server,
                                       UpstreamUser* user)
    : pool_(pool), server_(server), user_(user), writer_(this, &UpstreamConnection::on_written) {
  uv_tcp_init(loop, &tcp_);
  uv_timer_init(loop, &timer_);
  tcp_.data = this;
  timer_.data = this;
  connect_req_.data = this;

  llhttp_init(&parser_, HTTP_RESPONSE, &parser_settings());
  parser_.data = this;
}

// One table for every connection: llhttp only reads it.
const llhttp_settings_t& UpstreamConnection::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_status = &UpstreamConnection::on_status;
    s.on_header_field = &UpstreamConnection::on_header_field;
    s.on_header_value = &UpstreamConnection::on_header_value;
    s.on_headers_complete = &UpstreamConnection::on_headers_complete;
    s.on_body = &UpstreamConnection::on_body;
    s.on_message_complete = &UpstreamConnection::on_message_complete;
    return s;
  }();
  return settings;
}

UpstreamConnection* UpstreamConnection::connect(uv_loop_t* loop, UpstreamPool* pool,
                                                size_t server, UpstreamUser* user) {
  auto* c = new UpstreamConnection(loop, pool, server, user);
  const auto& addr = pool->server_config(server).address;
  int rc = uv_tcp_connect(&c->connect_req_, &c->tcp_, addr.sa(), &UpstreamConnection::on_connect);
  if (rc != 0) {
    spdlog::warn("upstream {}: connect to {}: {}", pool->config().name, addr.text, uv_strerror(rc));
    c->user_ = nullptr;
    c->close();
    return nullptr;
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  c->arm_timer(pool->config().timeouts.connect);
  return c;
}

void UpstreamConnection::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<UpstreamConnection*>(req->data);
  if (self->state_ == State::Closing) return;  // aborted while connecting
  if (status != 0) {
    spdlog::warn("upstream {}: connect to {}: {}", self->pool_->config().name,
                 self->pool_->server_config(self->server_).address.text, uv_strerror(status));
    self->fail(UpstreamError::ConnectFailed);
    return;
  }
  uv_timer_stop(&self->timer_);
  self->state_ = State::Active;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&self->tcp_), &UpstreamConnection::on_alloc,
                &UpstreamConnection::on_read);
  self->user_->on_upstream_ready();
}

void UpstreamConnection::attach(UpstreamUser* user) {
  user_ = user;
  state_ = State::Active;
  uv_timer_stop(&timer_);
}

void UpstreamConnection::begin_request(bool head_request) {
  ++requests_;
  head_request_ = head_request;
  head_done_ = response_done_ = request_sent_ = false;
  response_bytes_ = 0;
  in_value_ = false;
  head_.clear();
  llhttp_init(&parser_, HTTP_RESPONSE, &parser_settings());
  parser_.data = this;
  arm_timer(pool_->config().timeouts.response);
}

int UpstreamConnection::send(const uv_buf_t* bufs, unsigned n) {
  return writer_.write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, n);
}

int UpstreamConnection::send(std::string_view bytes) {
  return writer_.write(reinterpret_cast<uv_stream_t*>(&tcp_), bytes);
}

void UpstreamConnection::request_sent() { request_sent_ = true; }

void UpstreamConnection::pause_reading() {
  if (reading_paused_ || state_ == State::Closing) return;
  reading_paused_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  uv_timer_stop(&timer_);  // a slow client is not a slow app
}

void UpstreamConnection::resume_reading() {
  if (!reading_paused_ || state_ == State::Closing) return;
  reading_paused_ = false;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &UpstreamConnection::on_alloc,
                &UpstreamConnection::on_read);
  if (state_ == State::Active) arm_timer(pool_->config().timeouts.response);
}

void UpstreamConnection::start_tunnel() {
  state_ = State::Tunnel;
  uv_timer_stop(&timer_);
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

void UpstreamConnection::arm_timer(config::Duration d) {
  uv_timer_start(&timer_, &UpstreamConnection::on_timer, static_cast<uint64_t>(d.count()), 0);
}

void UpstreamConnection::on_timer(uv_timer_t* t) {
  auto* self = static_cast<UpstreamConnection*>(t->data);
  switch (self->state_) {
    case State::Connecting: self->fail(UpstreamError::ConnectTimeout); break;
    case State::Active: self->fail(UpstreamError::ResponseTimeout); break;
    case State::Idle:
      self->pool_->forget_idle(self);
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
    self->pool_->forget_idle(self);
    self->close();
    return;
  }
  if (nread < 0) {
    if (self->state_ == State::Tunnel) {
      self->fail(UpstreamError::Truncated);
      return;
    }
    // EOF ends a close-delimited body; anything else is a failure.
    if (nread == UV_EOF && self->head_done_ && !self->response_done_ &&
        llhttp_message_needs_eof(&self->parser_)) {
      llhttp_errno_t rc = llhttp_finish(&self->parser_);
      if ((rc == HPE_OK || rc == HPE_PAUSED) && self->response_done_) {
        self->finish_response();
        return;
      }
    }
    if (self->response_done_) return;  // already complete; close follows
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
  if (response_done_) {
    // Bytes after a complete response: the server is misbehaving (or
    // pipelining junk). Never hand this connection to another request.
    in_.consume(len);
    if (user_ == nullptr) close();
    return;
  }
  arm_timer(pool_->config().timeouts.response);
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  size_t used = len;
  if (err == HPE_PAUSED_UPGRADE) {
    // A 101: what follows the head is already tunnel data.
    used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    in_.consume(used);
    if (state_ == State::Active) start_tunnel();
    return;
  }
  if (state_ == State::Closing) return;  // a callback failed us
  if (err == HPE_PAUSED) {
    // Paused at message end: anything after it is junk (see above).
    in_.consume(len);
    finish_response();
    return;
  }
  in_.consume(used);
  if (err != HPE_OK) {
    spdlog::warn("upstream {}: {}: {}", pool_->config().name,
                 pool_->server_config(server_).address.text, llhttp_get_error_reason(&parser_));
    fail(head_done_ ? UpstreamError::Truncated : UpstreamError::BadResponse);
    return;
  }
  if (!head_done_ && head_.buf.size() > kMaxResponseHead) fail(UpstreamError::BadResponse);
}

void UpstreamConnection::finish_response() {
  UpstreamUser* user = user_;
  user_ = nullptr;
  uv_timer_stop(&timer_);
  // An app that answered before reading the whole request (say, a 413)
  // leaves the connection mid-request: it cannot carry another one.
  bool reusable = request_sent_ && head_.keep_alive && writer_.queued() == 0 && in_.empty() && !reading_paused_ &&
                  state_ == State::Active;
  if (reusable && pool_->put_idle(this)) {
    state_ = State::Idle;
    in_.release_if_empty();
    arm_timer(pool_->config().keepalive.idle_timeout);
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
  pending_closes_ = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &UpstreamConnection::on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &UpstreamConnection::on_closed);
}

void UpstreamConnection::on_closed(uv_handle_t* h) {
  auto* self = static_cast<UpstreamConnection*>(h->data);
  if (--self->pending_closes_ == 0) delete self;
}

// --- response parser callbacks ---------------------------------------------

namespace {
UpstreamConnection* self_of(llhttp_t* p) { return static_cast<UpstreamConnection*>(p->data); }
void append(std::string& buf, Span& span, const char* at, size_t len) {
  if (span.len == 0) span.off = static_cast<uint32_t>(buf.size());
  buf.append(at, len);
  span.len += static_cast<uint32_t>(len);
}
}  // namespace

int UpstreamConnection::on_status(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append(self->head_.buf, self->head_.reason, at, len);
  return 0;
}

int UpstreamConnection::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  auto& h = self->head_;
  if (self->in_value_ || h.headers.empty()) {
    h.headers.emplace_back();
    self->in_value_ = false;
  }
  append(h.buf, h.headers.back().name, at, len);
  return 0;
}

int UpstreamConnection::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  self->in_value_ = true;
  append(self->head_.buf, self->head_.headers.back().value, at, len);
  return 0;
}

int UpstreamConnection::on_headers_complete(llhttp_t* p) {
  auto* self = self_of(p);
  auto& h = self->head_;
  h.status = static_cast<uint16_t>(p->status_code);
  if (h.status >= 100 && h.status < 200 && h.status != 101) {
    // Interim responses (100, 103) are not forwarded: sluice answers the
    // client's 100-continue itself. Parse on to the final response.
    h.clear();
    self->in_value_ = false;
    return 0;
  }
  h.http_major = p->http_major;
  h.http_minor = p->http_minor;
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  bool no_body = self->head_request_ || h.status == 204 || h.status == 304 || h.status == 101;
  if (no_body) h.framing = BodyFraming::None;
  else if (p->flags & F_CHUNKED) h.framing = BodyFraming::Chunked;
  else if (p->flags & F_CONTENT_LENGTH) {
    h.content_length = p->content_length;
    h.framing = p->content_length == 0 ? BodyFraming::None : BodyFraming::Length;
  } else {
    h.framing = BodyFraming::UntilClose;
    h.keep_alive = false;
  }
  self->head_done_ = true;
  self->user_->on_upstream_head(h);
  if (self->state_ == State::Closing) return -1;
  if (h.status == 101) return 2;  // no body; execute returns HPE_PAUSED_UPGRADE
  return self->head_request_ ? 1 : 0;
}

int UpstreamConnection::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  self->user_->on_upstream_body(at, len);
  return self->state_ == State::Closing ? -1 : 0;
}

int UpstreamConnection::on_message_complete(llhttp_t* p) {
  auto* self = self_of(p);
  if (!self->head_done_) return 0;           // an interim response ended
  if (self->head_.status == 101) return 0;  // the tunnel starts; nothing ends
  self->response_done_ = true;
  return HPE_PAUSED;
}

}  // namespace sluice::proxy
