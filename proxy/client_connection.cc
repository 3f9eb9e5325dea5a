#include "proxy/client_connection.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "proxy/http_util.h"
#include "proxy/response_builder.h"
#include "proxy/server.h"

namespace sluice::proxy {

namespace {

// Flow control: stop reading one side while the other side's write queue
// holds more than this; resume below half of it.
constexpr size_t kHighWater = 256 * 1024;
constexpr size_t kLowWater = kHighWater / 2;

ClientConnection* self_of(llhttp_t* p) { return static_cast<ClientConnection*>(p->data); }

void append_span(std::string& buf, Span& span, const char* at, size_t len) {
  if (span.len == 0) span.off = static_cast<uint32_t>(buf.size());
  buf.append(at, len);
  span.len += static_cast<uint32_t>(len);
}

// The status a parser error earns: 400 for malformed input, 501 for a
// Transfer-Encoding we do not implement.
int status_for(llhttp_errno_t err) {
  switch (err) {
    case HPE_INVALID_METHOD: return 400;
    case HPE_INVALID_VERSION: return 505;
    case HPE_INVALID_TRANSFER_ENCODING: return 501;
    default: return 400;
  }
}

}  // namespace

ClientConnection::ClientConnection(Server& server, ConnId id, uint32_t gen, config::ConfigPtr cfg,
                                   const config::Listener& listener)
    : server_(server), id_(id), gen_(gen), conn_cfg_(std::move(cfg)), listener_(listener),
      writer_(this, &ClientConnection::on_written) {
  uv_tcp_init(server_.loop(), &tcp_);
  uv_timer_init(server_.loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;

  // Strict mode: no lenient flag is ever set on this parser.
  llhttp_init(&parser_, HTTP_REQUEST, &parser_settings());
  parser_.data = this;
}

// One table for every connection: llhttp only reads it.
const llhttp_settings_t& ClientConnection::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_method = &ClientConnection::on_method;
    s.on_url = &ClientConnection::on_url;
    s.on_header_field = &ClientConnection::on_header_field;
    s.on_header_value = &ClientConnection::on_header_value;
    s.on_headers_complete = &ClientConnection::on_headers_complete;
    s.on_body = &ClientConnection::on_body;
    s.on_message_complete = &ClientConnection::on_message_complete;
    return s;
  }();
  return settings;
}

ClientConnection::~ClientConnection() = default;

bool ClientConnection::accept(uv_stream_t* listener) {
  int rc = uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_));
  if (rc != 0) {
    close();
    return false;
  }
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int len = sizeof peer;
  char ip[64] = "";
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), ip, sizeof ip);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), ip, sizeof ip);
    }
  }
  client_ip_ = ip;
  transition(ClientState::Idle);
  update_read_state();
  return true;
}

// --- state and timers ---------------------------------------------------------

void ClientConnection::transition(ClientState next) {
  state_ = next;
  arm_timer();
}

void ClientConnection::arm_timer() {
  const auto& t = listener_.timeouts;
  config::Duration d{0};
  switch (state_) {
    case ClientState::Idle: d = t.idle; break;
    case ClientState::ReadingHead: d = t.header; break;
    case ClientState::Queued: d = pool_ ? pool_->config().queue.timeout : t.header; break;
    case ClientState::Proxying:
      if (!request_done_ && body_flowing_) d = t.body;
      else if (writer_.queued() > 0) d = t.send;
      break;
    case ClientState::Draining: d = t.send; break;
    case ClientState::Routing:
    case ClientState::Connecting:
    case ClientState::Tunnel:
    case ClientState::Closing: break;
  }
  if (d.count() > 0) {
    uv_timer_start(&timer_, &ClientConnection::on_timer, static_cast<uint64_t>(d.count()), 0);
  } else {
    uv_timer_stop(&timer_);
  }
}

void ClientConnection::on_timer(uv_timer_t* t) {
  auto* self = static_cast<ClientConnection*>(t->data);
  switch (self->state_) {
    case ClientState::Idle: self->close(); break;
    case ClientState::ReadingHead: self->reject(408); break;
    case ClientState::Queued:
      self->pool_->dequeue(self);
      self->send_local(503, "upstream busy\n", nullptr, false, 1);
      break;
    case ClientState::Proxying:
      if (!self->response_started_ && !self->request_done_) {
        self->drop_upstream();
        self->reject(408);
      } else {
        self->close();  // mid-response: a client that stopped reading
      }
      break;
    default: self->close(); break;
  }
}

// --- reading ---------------------------------------------------------------------

void ClientConnection::update_read_state() {
  if (state_ == ClientState::Closing || peer_eof_) return;
  // Read while there is room; a paused parser with a full buffer waits.
  bool want = !in_.full();
  if (state_ == ClientState::Proxying && body_flowing_ && upstream_ != nullptr &&
      upstream_->write_queued() > kHighWater) {
    want = false;  // the app is slower than the client: backpressure
  }
  if (state_ == ClientState::Draining) want = false;
  if (want == reading_) return;
  reading_ = want;
  auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want) uv_read_start(s, &ClientConnection::on_alloc, &ClientConnection::on_read);
  else uv_read_stop(s);
}

void ClientConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  *buf = static_cast<ClientConnection*>(h->data)->in_.writable();
}

void ClientConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<ClientConnection*>(s->data);
  if (nread == 0) return;
  if (nread < 0) {
    // A client that finished its request and half-closed still gets its
    // response; any other EOF or error means the client is gone.
    bool request_in = self->request_done_ && (self->state_ == ClientState::Proxying ||
                                              self->state_ == ClientState::Routing ||
                                              self->state_ == ClientState::Queued ||
                                              self->state_ == ClientState::Connecting);
    if (nread == UV_EOF && request_in) {
      self->peer_eof_ = true;
      self->close_after_response_ = true;
      self->reading_ = false;
      uv_read_stop(s);
      return;
    }
    self->close();
    return;
  }
  self->in_.commit(static_cast<size_t>(nread));
  if (self->state_ == ClientState::Tunnel) {
    auto data = self->in_.readable();
    self->in_.consume(data.size());
    if (self->upstream_ == nullptr || self->upstream_->send(data) != 0) {
      self->close();
      return;
    }
    self->update_read_state();
    return;
  }
  if (self->state_ == ClientState::Idle) self->start_request_head();
  self->process_input();
}

void ClientConnection::start_request_head() {
  head_.clear();
  head_bytes_ = body_bytes_ = 0;
  in_value_ = head_seen_ = request_done_ = body_flowing_ = expect_continue_ = false;
  response_started_ = response_done_ = chunk_response_ = close_after_response_ = false;
  reject_status_ = 0;
  after_lf_ = false;
  route_ = nullptr;
  req_cfg_.reset();
  tried_ = 0;
  transition(ClientState::ReadingHead);
}

// Feeds buffered bytes to the parser when the current state may consume
// them: the head while reading it, the body once it may flow upstream.
void ClientConnection::process_input() {
  bool may_parse = state_ == ClientState::ReadingHead ||
                   (state_ == ClientState::Proxying && body_flowing_ && !request_done_);
  if (may_parse && !in_.empty()) {
    auto data = in_.readable();
    llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
    if (state_ == ClientState::Closing) return;
    size_t used = data.size();
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    }
    if (state_ == ClientState::ReadingHead) {
      head_bytes_ += used;
      if (has_obs_fold(data.substr(0, used))) reject_status_ = 400;
    }
    in_.consume(used);
    if (reject_status_ != 0) {
      int status = reject_status_;
      reject_status_ = 0;
      if (response_started_) close();
      else {
        drop_upstream();
        reject(status);
      }
      return;
    }
    if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
      spdlog::debug("client {}: bad request: {}", head_.client_ip, llhttp_get_error_reason(&parser_));
      if (response_started_) close();
      else {
        drop_upstream();
        reject(status_for(err));
      }
      return;
    }
    if (state_ == ClientState::ReadingHead && !head_seen_ &&
        head_bytes_ > listener_.limits.max_header_bytes) {
      reject(431);
      return;
    }
    if (state_ == ClientState::ReadingHead && head_seen_) head_complete();
    else if (state_ == ClientState::Proxying && request_done_ && upstream_ != nullptr) {
      upstream_->request_sent();
      if (response_done_) finish_exchange();
    }
    if (state_ == ClientState::Proxying) arm_timer();
  }
  update_read_state();
}

// llhttp 8 accepts obs-fold (a header line continued with SP or HTAB) even
// in strict mode. RFC 9112 §5.2 lets a proxy reject it, and a proxy that
// unfolds where the app would not is a smuggling vector: reject.
bool ClientConnection::has_obs_fold(std::string_view bytes) {
  for (char c : bytes) {
    if (after_lf_ && (c == ' ' || c == '\t')) return true;
    after_lf_ = c == '\n';
  }
  return false;
}

// --- parser callbacks --------------------------------------------------------------

int ClientConnection::on_method(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append_span(self->head_.buf, self->head_.method, at, len);
  return 0;
}

int ClientConnection::on_url(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append_span(self->head_.buf, self->head_.target, at, len);
  if (self->head_.buf.size() > self->listener_.limits.max_header_bytes) {
    self->reject_status_ = 414;
    return -1;
  }
  return 0;
}

int ClientConnection::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  auto& h = self->head_;
  if (self->in_value_ || h.headers.empty()) {
    h.headers.emplace_back();
    self->in_value_ = false;
  }
  append_span(h.buf, h.headers.back().name, at, len);
  if (h.buf.size() > self->listener_.limits.max_header_bytes) {
    self->reject_status_ = 431;
    return -1;
  }
  return 0;
}

int ClientConnection::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  auto& h = self->head_;
  if (h.headers.empty()) return -1;
  self->in_value_ = true;
  append_span(h.buf, h.headers.back().value, at, len);
  if (h.buf.size() > self->listener_.limits.max_header_bytes) {
    self->reject_status_ = 431;
    return -1;
  }
  return 0;
}

int ClientConnection::on_headers_complete(llhttp_t* p) {
  auto* self = self_of(p);
  auto& h = self->head_;
  if (h.buf.size() > self->listener_.limits.max_header_bytes) {
    self->reject_status_ = 431;
    return -1;
  }
  if (p->method == HTTP_CONNECT) {
    self->reject_status_ = 405;  // a reverse proxy opens no tunnels on request
    return -1;
  }
  h.http_major = p->http_major;
  h.http_minor = p->http_minor;
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.upgrade = p->upgrade != 0;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  h.content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  h.has_body = h.chunked || h.content_length > 0;
  if (!h.chunked && h.content_length > self->listener_.limits.max_body_bytes) {
    self->reject_status_ = 413;
    return -1;
  }
  self->expect_continue_ = h.has_body && iequals(h.header("expect"), "100-continue");
  self->head_seen_ = true;
  // With a body, stop here until an upstream is ready to take it; without
  // one, run on to message-complete (which pauses) so the request is whole.
  return h.has_body ? HPE_PAUSED : 0;
}

int ClientConnection::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  self->body_bytes_ += len;
  if (self->body_bytes_ > self->listener_.limits.max_body_bytes) {
    self->reject_status_ = 413;
    return -1;
  }
  if (self->upstream_ == nullptr) return -1;
  int rc;
  if (self->head_.chunked) {
    char size_line[24];
    auto [end, ec] = std::to_chars(size_line, size_line + 20, len, 16);
    (void)ec;
    *end++ = '\r';
    *end++ = '\n';
    uv_buf_t bufs[3] = {
        uv_buf_init(size_line, static_cast<unsigned>(end - size_line)),
        uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len)),
        uv_buf_init(const_cast<char*>("\r\n"), 2)};
    rc = self->upstream_->send(bufs, 3);
  } else {
    rc = self->upstream_->send(std::string_view(at, len));
  }
  return rc == 0 ? 0 : -1;
}

int ClientConnection::on_message_complete(llhttp_t* p) {
  auto* self = self_of(p);
  self->request_done_ = true;
  if (self->head_.chunked && self->upstream_ != nullptr) {
    // Trailers are not forwarded: the upstream head announced none.
    if (self->upstream_->send("0\r\n\r\n") != 0) return -1;
  }
  // Upgrade requests end the HTTP stream; llhttp returns PAUSED_UPGRADE.
  return self->head_.upgrade ? 0 : HPE_PAUSED;
}

// --- routing -------------------------------------------------------------------------

void ClientConnection::head_complete() {
  if (head_bytes_ > listener_.limits.max_header_bytes) {
    reject(431);
    return;
  }
  head_.client_ip = client_ip_;  // assign: reuses the string's capacity
  head_.tls = false;
  RouteJob job;
  job.conn = id_;
  job.gen = gen_;
  job.cfg = server_.config();
  job.head = std::move(head_);
  job.upstream_head = std::move(upstream_head_);
  transition(ClientState::Routing);
  if (!server_.submit(job)) {
    // Workers saturated: shed cleanly rather than queue without bound.
    head_ = std::move(job.head);
    upstream_head_ = std::move(job.upstream_head);
    send_local(503, "overloaded\n", nullptr, true, 1);
  }
}

void ClientConnection::on_routed(RouteResult&& r) {
  head_ = std::move(r.head);
  upstream_head_ = std::move(r.upstream_head);
  req_cfg_ = std::move(r.cfg);
  route_ = r.route;
  if (state_ != ClientState::Routing) return;
  switch (r.outcome) {
    case RouteOutcome::BadRequest: reject(400); return;
    case RouteOutcome::NotFound: send_local(404, "no route\n", nullptr, head_.has_body); return;
    case RouteOutcome::Respond:
      send_local(route_->respond->status, route_->respond->body, &route_->respond->headers,
                 head_.has_body);  // an unread body cannot be skipped safely: close
      return;
    case RouteOutcome::Forward: start_forward(); return;
  }
}

// --- upstream ------------------------------------------------------------------------

void ClientConnection::start_forward() {
  const auto& up = req_cfg_->upstreams[*route_->upstream];
  pool_ = server_.pool(up.name);
  if (pool_ == nullptr) {
    send_local(502, "no such upstream\n", nullptr, true);
    return;
  }
  attempts_left_ = up.retries.attempts;
  try_acquire();
}

void ClientConnection::try_acquire() {
  auto server = pool_->acquire(tried_);
  if (server) {
    slot_held_ = true;
    use_server(*server);
    return;
  }
  if (tried_ != 0 || pool_->queue_full()) {
    // Every server tried, or the waiting room is full: shed, never pile on.
    send_local(503, "upstream busy\n", nullptr, head_.has_body, 1);
    return;
  }
  pool_->enqueue(this);
  transition(ClientState::Queued);
}

void ClientConnection::on_slot_available() {
  if (state_ != ClientState::Queued) return;
  try_acquire();
}

void ClientConnection::use_server(size_t server) {
  server_index_ = server;
  tried_ |= TriedSet{1} << server;
  response_started_ = response_done_ = false;
  transition(ClientState::Connecting);
  if (UpstreamConnection* idle = pool_->take_idle(server)) {
    upstream_ = idle;
    idle->attach(this);
    on_upstream_ready();
    return;
  }
  upstream_ = UpstreamConnection::connect(server_.loop(), pool_, server, this);
  if (upstream_ == nullptr) retry_or_fail(UpstreamError::ConnectFailed);
}

void ClientConnection::on_upstream_ready() {
  transition(ClientState::Proxying);
  upstream_->begin_request(head_.method_view() == "HEAD");
  if (upstream_->send(upstream_head_) != 0) return;  // the error event follows
  if (!head_.has_body) {
    upstream_->request_sent();
    update_read_state();
    return;
  }
  body_flowing_ = true;
  if (expect_continue_ && in_.empty()) write("HTTP/1.1 100 Continue\r\n\r\n");
  llhttp_resume(&parser_);
  process_input();
}

void ClientConnection::on_upstream_head(ResponseHead& h) {
  response_started_ = true;
  const bool http10 = head_.http_major == 1 && head_.http_minor == 0;
  ClientHeadOptions opts;
  opts.edits = &route_->response_headers;
  if (h.framing == BodyFraming::Chunked || h.framing == BodyFraming::UntilClose) {
    opts.framing = http10 ? ClientFraming::Close : ClientFraming::Chunked;
  }
  chunk_response_ = opts.framing == ClientFraming::Chunked;
  bool keep = want_keep_alive() && opts.framing != ClientFraming::Close && h.status != 101 &&
              !head_.upgrade;
  if (!keep) close_after_response_ = true;
  opts.close = close_after_response_ && h.status != 101;
  opts.keep_alive_10 = http10 && !opts.close;
  out_.clear();
  build_client_head(out_, h, opts);
  write(out_);
  if (h.status == 101) {
    transition(ClientState::Tunnel);
    if (!in_.empty() && upstream_ != nullptr) {
      // Bytes the client sent after its upgrade request, held until the 101.
      auto rest = in_.readable();
      in_.consume(rest.size());
      upstream_->send(rest);
    }
    update_read_state();
  }
}

void ClientConnection::on_upstream_body(const char* data, size_t len) {
  if (chunk_response_) {
    char size_line[24];
    auto [end, ec] = std::to_chars(size_line, size_line + 20, len, 16);
    (void)ec;
    *end++ = '\r';
    *end++ = '\n';
    uv_buf_t bufs[3] = {uv_buf_init(size_line, static_cast<unsigned>(end - size_line)),
                        uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len)),
                        uv_buf_init(const_cast<char*>("\r\n"), 2)};
    write(bufs, 3);
  } else {
    uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    write(&b, 1);
  }
  if (upstream_ != nullptr && writer_.queued() > kHighWater) upstream_->pause_reading();
}

void ClientConnection::on_upstream_done() {
  upstream_ = nullptr;
  release_slot();
  response_done_ = true;
  if (chunk_response_) write("0\r\n\r\n");
  if (state_ == ClientState::Closing) return;
  if (!request_done_) {
    // The app answered before the whole body arrived: the rest of the body
    // cannot be told from a next request without reading it, so end here.
    close_after_response_ = true;
  }
  finish_exchange();
}

void ClientConnection::on_upstream_error(UpstreamError err) {
  upstream_ = nullptr;
  release_slot();
  if (state_ == ClientState::Closing) return;
  if (response_started_ || state_ == ClientState::Tunnel) {
    // Never present a truncated body as complete: no final chunk, and the
    // connection ends.
    spdlog::warn("upstream {}: {} during response", pool_->config().name, to_string(err));
    close();
    return;
  }
  retry_or_fail(err);
}

void ClientConnection::retry_or_fail(UpstreamError err) {
  upstream_ = nullptr;
  release_slot();
  // Retry only when the request can be replayed exactly: no body byte has
  // left the client buffer, and either nothing reached the app or the
  // method is idempotent and the app closed without answering.
  bool nothing_sent = err == UpstreamError::ConnectFailed || err == UpstreamError::ConnectTimeout;
  bool replayable = body_bytes_ == 0 &&
                    (nothing_sent || (err == UpstreamError::ClosedEarly &&
                                      is_idempotent(head_.method_view())));
  if (replayable && attempts_left_ > 0) {
    --attempts_left_;
    body_flowing_ = false;
    auto server = pool_->acquire(tried_);
    if (!server) server = pool_->acquire(0);  // a single server: try it again
    if (server) {
      slot_held_ = true;
      use_server(*server);
      return;
    }
  }
  int status = (err == UpstreamError::ConnectTimeout || err == UpstreamError::ResponseTimeout)
                   ? 504
                   : 502;
  send_local(status, status == 504 ? "upstream timed out\n" : "bad gateway\n", nullptr,
             !request_done_);
}

void ClientConnection::on_upstream_drained() {
  if (upstream_ != nullptr && upstream_->write_queued() < kLowWater) update_read_state();
}

void ClientConnection::on_upstream_tunnel_data(const char* data, size_t len) {
  uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  write(&b, 1);
  if (upstream_ != nullptr && writer_.queued() > kHighWater) upstream_->pause_reading();
}

void ClientConnection::release_slot() {
  if (!slot_held_) return;
  slot_held_ = false;
  pool_->release(server_index_);
}

void ClientConnection::drop_upstream() {
  if (upstream_ != nullptr) {
    upstream_->abort();
    upstream_ = nullptr;
  }
  release_slot();
  if (pool_ != nullptr && state_ == ClientState::Queued) pool_->dequeue(this);
}

// --- finishing a request -----------------------------------------------------------------

bool ClientConnection::want_keep_alive() const {
  return head_.keep_alive && !draining_ && !close_after_response_ && !server_.draining();
}

void ClientConnection::finish_exchange() {
  if (!request_done_ || !response_done_) return;
  if (close_after_response_ || !want_keep_alive()) {
    transition(ClientState::Draining);
    update_read_state();
    if (writer_.queued() == 0) close();
    return;
  }
  next_request();
}

void ClientConnection::next_request() {
  req_cfg_.reset();
  route_ = nullptr;
  pool_ = nullptr;
  llhttp_resume(&parser_);
  transition(ClientState::Idle);
  if (!in_.empty()) {
    // A pipelined request is already here.
    start_request_head();
    process_input();
  } else {
    in_.release_if_empty();
    update_read_state();
  }
}

void ClientConnection::send_local(int status, std::string_view body,
                                  const config::HeaderList* headers, bool close_after,
                                  uint32_t retry_after) {
  if (!request_done_ || !want_keep_alive()) close_after = true;
  close_after_response_ = close_after;
  const bool http10 = head_.http_major == 1 && head_.http_minor == 0;
  out_.clear();
  build_local_response(out_, {.status = status,
                              .body = body,
                              .headers = headers,
                              .close = close_after,
                              .keep_alive_10 = http10 && !close_after,
                              .head_request = head_.method_view() == "HEAD",
                              .retry_after = retry_after});
  response_started_ = true;
  response_done_ = true;
  write(out_);
  if (state_ == ClientState::Closing) return;
  if (close_after) {
    transition(ClientState::Draining);
    update_read_state();
    if (writer_.queued() == 0) close();
    return;
  }
  next_request();
}

void ClientConnection::reject(int status) {
  request_done_ = false;  // forces close: the rest of the input is not trusted
  send_local(status, status_reason(status), nullptr, true);
}

// --- writing ---------------------------------------------------------------------------------

void ClientConnection::write(std::string_view bytes) {
  uv_buf_t b = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  write(&b, 1);
}

void ClientConnection::write(const uv_buf_t* bufs, unsigned n) {
  if (state_ == ClientState::Closing) return;
  if (writer_.write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, n) != 0) {
    close();
    return;
  }
  if (writer_.queued() > 0 && state_ == ClientState::Proxying) arm_timer();
}

void ClientConnection::on_written(void* p, int status) {
  auto* self = static_cast<ClientConnection*>(p);
  if (self->state_ == ClientState::Closing) return;
  if (status != 0) {
    self->close();
    return;
  }
  if (self->state_ == ClientState::Draining) {
    if (self->writer_.queued() == 0) self->close();
    return;
  }
  if (self->writer_.queued() < kLowWater && self->upstream_ != nullptr) {
    self->upstream_->resume_reading();
  }
  if (self->state_ == ClientState::Proxying) self->arm_timer();
}

// --- shutdown ------------------------------------------------------------------------------------

void ClientConnection::drain() {
  draining_ = true;
  if (state_ == ClientState::Idle) close();
}

void ClientConnection::close() {
  if (state_ == ClientState::Closing) return;
  drop_upstream();
  state_ = ClientState::Closing;
  pending_closes_ = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConnection::on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &ClientConnection::on_closed);
}

void ClientConnection::on_closed(uv_handle_t* h) {
  auto* self = static_cast<ClientConnection*>(h->data);
  if (--self->pending_closes_ == 0) self->server_.release(self);
}

}  // namespace sluice::proxy
