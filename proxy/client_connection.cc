#include "proxy/client_connection.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "core/free_list.h"
#include "proxy/access_log.h"
#include "proxy/http_util.h"
#include "proxy/response_builder.h"
#include "proxy/server.h"

namespace sluice::proxy {

namespace {

// Flow control: stop reading one side while the other side's write queue
// holds more than this; resume below half of it.
constexpr size_t kHighWater = 256 * 1024;
constexpr size_t kLowWater = kHighWater / 2;
// A request body up to this size is read completely before the request
// takes an upstream slot: a slow upload never holds an app thread, and a
// body that turns out malformed never reaches the app. Larger bodies stream
// after their first kBodyBuffer bytes.
constexpr size_t kBodyBuffer = 64 * 1024;
// Response bytes of one upstream read smaller than this are copied and sent
// together; larger pieces go out directly (with what was held, in one writev).
constexpr size_t kCorkLimit = 16 * 1024;

// Writes "<hex len>\r\n", the line that opens a chunk; returns its length.
size_t chunk_size_line(char (&out)[24], size_t len) {
  auto [end, ec] = std::to_chars(out, out + 20, len, 16);
  (void)ec;
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<size_t>(end - out);
}

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

// Loop thread only.
thread_local FreeList<Exchange, 4096> free_exchanges;

}  // namespace

void Exchange::reset() {
  head.clear();
  upstream_head.clear();
  out.clear();
  cfg.reset();
  route = nullptr;
  pool = nullptr;
  upstream = nullptr;
  server_index = 0;
  tried = 0;
  head_bytes = body_bytes = 0;
  attempts_left = 0;
  reject_status = 0;
  body_buf.clear();
  slot_held = in_value = after_lf = head_seen = request_done = body_flowing = false;
  body_streamed = false;
  logged = false;
  status = 0;
  sent_body = 0;
  started_ns = 0;
  upstream_addr = nullptr;
  queued_ns = 0;
  expect_continue = response_started = response_done = chunk_response = false;
  close_after_response = false;
}

ClientConnection::ClientConnection(Server& server, ConnId id, uint32_t gen, config::ConfigPtr cfg,
                                   const config::Listener& listener)
    : server_(server), id_(id), gen_(gen), conn_cfg_(std::move(cfg)), listener_(listener),
      writer_(this, &ClientConnection::on_written) {
  uv_tcp_init(server_.loop(), &tcp_);
  tcp_.data = this;
  timer_.owner = this;
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

ClientConnection::~ClientConnection() { release_exchange(); }

void ClientConnection::take_exchange() {
  if (x_ == nullptr) {
    x_ = free_exchanges.take();
    x_->reset();
  }
}

void ClientConnection::release_exchange() {
  if (x_ == nullptr) return;
  x_->cfg.reset();  // a cached exchange must not pin an old config
  free_exchanges.give(x_);
  x_ = nullptr;
}

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
    case ClientState::ReadingBody: d = t.body; break;
    case ClientState::Queued: d = x_->pool->config().queue.timeout; break;
    case ClientState::Proxying:
      if (!x_->request_done && x_->body_flowing) d = t.body;
      else if (writer_.queued() > 0) d = t.send;
      break;
    case ClientState::Draining: d = t.send; break;
    case ClientState::Routing:
    case ClientState::Connecting:
    case ClientState::Tunnel:
    case ClientState::Closing: break;
  }
  server_.timers().arm(timer_, d);  // zero disarms
}

void ClientConnection::on_timeout(DeadlineNode* node) {
  auto* self = static_cast<ClientConnection*>(node->owner);
  switch (self->state_) {
    case ClientState::Idle: self->close(); break;
    case ClientState::ReadingHead:
    case ClientState::ReadingBody: self->reject(408); break;
    case ClientState::Queued:
      self->x_->pool->dequeue(self);
      ++self->upstream_metrics().shed[static_cast<size_t>(ShedReason::QueueTimeout)];
      self->send_local(503, "upstream busy\n", nullptr, false, 1);
      break;
    case ClientState::Proxying:
      if (!self->x_->response_started && !self->x_->request_done) {
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
  if (state_ == ClientState::Proxying && x_->body_flowing && x_->upstream != nullptr &&
      x_->upstream->write_queued() > kHighWater) {
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
    bool request_in = (self->state_ == ClientState::Proxying ||
                       self->state_ == ClientState::Routing ||
                       self->state_ == ClientState::Queued ||
                       self->state_ == ClientState::Connecting) &&
                      self->x_->request_done;
    if (nread == UV_EOF && request_in) {
      self->peer_eof_ = true;
      self->x_->close_after_response = true;
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
    if (self->x_->upstream == nullptr || self->x_->upstream->send(data) != 0) {
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
  take_exchange();
  x_->reset();
  // A fresh parser per request: we only get here at a message boundary.
  // Strict mode: no lenient flag is ever set.
  llhttp_init(&x_->parser, HTTP_REQUEST, &parser_settings());
  x_->parser.data = this;
  x_->started_ns = uv_hrtime();
  transition(ClientState::ReadingHead);
}

// Feeds buffered bytes to the parser when the current state may consume
// them: the head while reading it, the body once it may flow upstream.
void ClientConnection::process_input() {
  bool may_parse = state_ == ClientState::ReadingHead || state_ == ClientState::ReadingBody ||
                   (state_ == ClientState::Proxying && x_->body_flowing && !x_->request_done);
  if (may_parse && !in_.empty()) {
    auto data = in_.readable();
    llhttp_errno_t err = llhttp_execute(&x_->parser, data.data(), data.size());
    if (state_ == ClientState::Closing) return;
    size_t used = data.size();
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      used = static_cast<size_t>(llhttp_get_error_pos(&x_->parser) - data.data());
    }
    if (state_ == ClientState::ReadingHead) {
      x_->head_bytes += used;
      if (has_obs_fold(data.substr(0, used))) x_->reject_status = 400;
    }
    in_.consume(used);
    if (x_->reject_status != 0) {
      int status = x_->reject_status;
      x_->reject_status = 0;
      if (x_->response_started) close();
      else {
        drop_upstream();
        reject(status);
      }
      return;
    }
    if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
      spdlog::debug("client {}: bad request: {}", x_->head.client_ip, llhttp_get_error_reason(&x_->parser));
      if (x_->response_started) close();
      else {
        drop_upstream();
        reject(status_for(err));
      }
      return;
    }
    if (state_ == ClientState::ReadingHead && !x_->head_seen &&
        x_->head_bytes > listener_.limits.max_header_bytes) {
      reject(431);
      return;
    }
    if (state_ == ClientState::ReadingHead && x_->head_seen) head_complete();
    else if (state_ == ClientState::ReadingBody &&
             (x_->request_done || x_->body_buf.size() >= kBodyBuffer)) {
      x_->body_flowing = false;
      start_forward();
    }
    else if (state_ == ClientState::Proxying && x_->request_done && x_->upstream != nullptr) {
      x_->upstream->request_sent();
      if (x_->response_done) finish_exchange();
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
    if (x_->after_lf && (c == ' ' || c == '\t')) return true;
    x_->after_lf = c == '\n';
  }
  return false;
}

// --- parser callbacks --------------------------------------------------------------

int ClientConnection::on_method(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append_span(self->x_->head.buf, self->x_->head.method, at, len);
  return 0;
}

int ClientConnection::on_url(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append_span(self->x_->head.buf, self->x_->head.target, at, len);
  if (self->x_->head.buf.size() > self->listener_.limits.max_header_bytes) {
    self->x_->reject_status = 414;
    return -1;
  }
  return 0;
}

int ClientConnection::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  // llhttp 8 lets a space before the colon into the name. RFC 9112 §5.1:
  // a server MUST reject it (it is a classic smuggling vector).
  for (size_t i = 0; i < len; ++i) {
    if (!is_tchar(at[i])) {
      self->x_->reject_status = 400;
      return -1;
    }
  }
  auto& h = self->x_->head;
  if (self->x_->in_value || h.headers.empty()) {
    h.headers.emplace_back();
    self->x_->in_value = false;
  }
  append_span(h.buf, h.headers.back().name, at, len);
  if (h.buf.size() > self->listener_.limits.max_header_bytes) {
    self->x_->reject_status = 431;
    return -1;
  }
  return 0;
}

int ClientConnection::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  auto& h = self->x_->head;
  if (h.headers.empty()) return -1;
  self->x_->in_value = true;
  append_span(h.buf, h.headers.back().value, at, len);
  if (h.buf.size() > self->listener_.limits.max_header_bytes) {
    self->x_->reject_status = 431;
    return -1;
  }
  return 0;
}

int ClientConnection::on_headers_complete(llhttp_t* p) {
  auto* self = self_of(p);
  auto& h = self->x_->head;
  if (h.buf.size() > self->listener_.limits.max_header_bytes) {
    self->x_->reject_status = 431;
    return -1;
  }
  if (p->method == HTTP_CONNECT) {
    self->x_->reject_status = 405;  // a reverse proxy opens no tunnels on request
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
    self->x_->reject_status = 413;
    return -1;
  }
  self->x_->expect_continue = h.has_body && iequals(h.header("expect"), "100-continue");
  self->x_->head_seen = true;
  // With a body, stop here until an upstream is ready to take it; without
  // one, run on to message-complete (which pauses) so the request is whole.
  return h.has_body ? HPE_PAUSED : 0;
}

int ClientConnection::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  self->x_->body_bytes += len;
  if (self->x_->body_bytes > self->listener_.limits.max_body_bytes) {
    self->x_->reject_status = 413;
    return -1;
  }
  char size_line[24];
  size_t size_len = self->x_->head.chunked ? chunk_size_line(size_line, len) : 0;
  Exchange& x = *self->x_;
  if (x.upstream == nullptr) {
    // Still buffering: keep the bytes exactly as they will go upstream.
    x.body_buf.append(size_line, size_len);
    x.body_buf.append(at, len);
    if (size_len > 0) x.body_buf.append("\r\n");
    // Data callbacks cannot pause llhttp; process_input() stops parsing
    // once this execute() returns, so the buffer overshoots by one read.
    return 0;
  }
  x.body_streamed = true;
  uv_buf_t bufs[3] = {uv_buf_init(size_line, static_cast<unsigned>(size_len)),
                      uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len)),
                      uv_buf_init(const_cast<char*>("\r\n"), size_len > 0 ? 2 : 0)};
  return x.upstream->send(bufs, 3) == 0 ? 0 : -1;
}

int ClientConnection::on_message_complete(llhttp_t* p) {
  auto* self = self_of(p);
  self->x_->request_done = true;
  if (self->x_->head.chunked) {
    // Trailers are not forwarded: the upstream head announced none.
    if (self->x_->upstream == nullptr) self->x_->body_buf.append("0\r\n\r\n");
    else if (self->x_->upstream->send("0\r\n\r\n") != 0) return -1;
  }
  // Upgrade requests end the HTTP stream; llhttp returns PAUSED_UPGRADE.
  return self->x_->head.upgrade ? 0 : HPE_PAUSED;
}

// --- routing -------------------------------------------------------------------------

void ClientConnection::head_complete() {
  if (x_->head_bytes > listener_.limits.max_header_bytes) {
    reject(431);
    return;
  }
  x_->head.client_ip = client_ip_;  // assign: reuses the string's capacity
  x_->head.tls = false;
  RouteJob job;
  job.conn = id_;
  job.gen = gen_;
  job.cfg = server_.config();
  job.head = std::move(x_->head);
  job.upstream_head = std::move(x_->upstream_head);
  transition(ClientState::Routing);
  if (!server_.submit(job)) {
    // Workers saturated: shed cleanly rather than queue without bound.
    x_->head = std::move(job.head);
    x_->upstream_head = std::move(job.upstream_head);
    send_local(503, "overloaded\n", nullptr, true, 1);
  }
}

void ClientConnection::on_routed(RouteResult&& r) {
  x_->head = std::move(r.head);
  x_->upstream_head = std::move(r.upstream_head);
  x_->cfg = std::move(r.cfg);
  x_->route = r.route;
  if (state_ != ClientState::Routing) return;
  switch (r.outcome) {
    case RouteOutcome::BadRequest: reject(400); return;
    case RouteOutcome::NotFound: send_local(404, "no route\n", nullptr, x_->head.has_body); return;
    case RouteOutcome::Respond:
      send_local(x_->route->respond->status, x_->route->respond->body, &x_->route->respond->headers,
                 x_->head.has_body);  // an unread body cannot be skipped safely: close
      return;
    case RouteOutcome::Forward:
      if (x_->head.has_body) {
        read_body();
      } else {
        start_forward();
      }
      return;
  }
}

// --- upstream ------------------------------------------------------------------------

void ClientConnection::read_body() {
  transition(ClientState::ReadingBody);
  x_->body_flowing = true;
  if (x_->expect_continue && in_.empty()) {
    x_->expect_continue = false;
    write("HTTP/1.1 100 Continue\r\n\r\n");
  }
  llhttp_resume(&x_->parser);
  process_input();
}

void ClientConnection::start_forward() {
  const auto& up = x_->cfg->upstreams[*x_->route->upstream];
  x_->pool = server_.pool(up.name);
  if (x_->pool == nullptr) {
    send_local(502, "no such upstream\n", nullptr, true);
    return;
  }
  x_->attempts_left = up.retries.attempts;
  try_acquire();
}

void ClientConnection::try_acquire() {
  auto server = x_->pool->acquire(x_->tried);
  if (server) {
    x_->slot_held = true;
    use_server(*server);
    return;
  }
  if (x_->tried != 0 || x_->pool->queue_full()) {
    if (x_->tried == 0) ++upstream_metrics().shed[static_cast<size_t>(ShedReason::QueueFull)];
    // Every server tried, or the waiting room is full: shed, never pile on.
    send_local(503, "upstream busy\n", nullptr, x_->head.has_body, 1);
    return;
  }
  x_->pool->enqueue(this);
  x_->queued_ns = uv_hrtime();
  transition(ClientState::Queued);
}

void ClientConnection::on_slot_available() {
  if (state_ != ClientState::Queued) return;
  upstream_metrics().queue_wait.observe_us((uv_hrtime() - x_->queued_ns) / 1000);
  try_acquire();
}

void ClientConnection::use_server(size_t server) {
  x_->server_index = server;
  x_->upstream_addr = &x_->pool->server_config(server).address.text;
  x_->tried |= TriedSet{1} << server;
  x_->response_started = x_->response_done = false;
  transition(ClientState::Connecting);
  if (UpstreamConnection* idle = x_->pool->take_idle(server)) {
    x_->upstream = idle;
    idle->attach(this);
    on_upstream_ready();
    return;
  }
  x_->upstream = UpstreamConnection::connect(server_.loop(), x_->pool, server, this);
  if (x_->upstream == nullptr) retry_or_fail(UpstreamError::ConnectFailed);
}

void ClientConnection::on_upstream_ready() {
  transition(ClientState::Proxying);
  x_->upstream->begin_request(x_->head.method_view() == "HEAD");
  uv_buf_t out[2] = {
      uv_buf_init(x_->upstream_head.data(), static_cast<unsigned>(x_->upstream_head.size())),
      uv_buf_init(x_->body_buf.data(), static_cast<unsigned>(x_->body_buf.size()))};
  if (x_->upstream->send(out, 2) != 0) return;  // the error event follows
  if (!x_->head.has_body) {
    x_->upstream->request_sent();
    update_read_state();
    return;
  }
  if (x_->request_done) {
    x_->upstream->request_sent();
    update_read_state();
    return;
  }
  // The body is larger than the buffer: the rest streams.
  x_->body_flowing = true;
  llhttp_resume(&x_->parser);
  process_input();
}

void ClientConnection::on_upstream_head(ResponseHead& h) {
  x_->response_started = true;
  x_->status = h.status;
  const bool http10 = x_->head.http_major == 1 && x_->head.http_minor == 0;
  ClientHeadOptions opts;
  opts.edits = &x_->route->response_headers;
  if (h.framing == BodyFraming::Chunked || h.framing == BodyFraming::UntilClose) {
    opts.framing = http10 ? ClientFraming::Close : ClientFraming::Chunked;
  }
  x_->chunk_response = opts.framing == ClientFraming::Chunked;
  bool keep = want_keep_alive() && opts.framing != ClientFraming::Close && h.status != 101 &&
              !x_->head.upgrade;
  if (!keep) x_->close_after_response = true;
  opts.close = x_->close_after_response && h.status != 101;
  opts.keep_alive_10 = http10 && !opts.close;
  // Appended to the cork buffer: it leaves with the first body bytes.
  build_client_head(x_->out, h, opts);
  if (!corked_ || h.status == 101) uncork();
  if (h.status == 101) {
    transition(ClientState::Tunnel);
    if (!in_.empty() && x_->upstream != nullptr) {
      // Bytes the client sent after its upgrade request, held until the 101.
      auto rest = in_.readable();
      in_.consume(rest.size());
      x_->upstream->send(rest);
    }
    update_read_state();
  }
}

void ClientConnection::on_upstream_body(const char* data, size_t len) {
  x_->sent_body += len;
  if (x_->chunk_response) {
    char size_line[24];
    size_t size_len = chunk_size_line(size_line, len);
    uv_buf_t bufs[3] = {uv_buf_init(size_line, static_cast<unsigned>(size_len)),
                        uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len)),
                        uv_buf_init(const_cast<char*>("\r\n"), 2)};
    emit(bufs, 3);
  } else {
    uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    emit(&b, 1);
  }
  if (x_->upstream != nullptr && writer_.queued() > kHighWater) x_->upstream->pause_reading();
}

void ClientConnection::on_upstream_batch(bool begin) {
  if (begin) corked_ = true;
  else uncork();
}

void ClientConnection::emit(const uv_buf_t* bufs, unsigned n) {
  size_t total = 0;
  for (unsigned i = 0; i < n; ++i) total += bufs[i].len;
  if (corked_ && x_->out.size() + total <= kCorkLimit) {
    for (unsigned i = 0; i < n; ++i) x_->out.append(bufs[i].base, bufs[i].len);
    return;
  }
  // Too big to copy: whatever is held goes first, in the same system call.
  uv_buf_t all[4];
  unsigned k = 0;
  if (!x_->out.empty()) {
    all[k++] = uv_buf_init(x_->out.data(), static_cast<unsigned>(x_->out.size()));
  }
  for (unsigned i = 0; i < n && k < 4; ++i) all[k++] = bufs[i];
  write(all, k);
  x_->out.clear();
}

void ClientConnection::uncork() {
  corked_ = false;
  if (x_ == nullptr || x_->out.empty()) return;
  write(x_->out);
  x_->out.clear();
}

void ClientConnection::on_upstream_done() {
  x_->upstream = nullptr;
  release_slot();
  x_->response_done = true;
  if (x_->chunk_response) {
    uv_buf_t end = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
    emit(&end, 1);
  }
  uncork();
  if (state_ == ClientState::Closing) return;
  if (!x_->request_done) {
    // The app answered before the whole body arrived: the rest of the body
    // cannot be told from a next request without reading it, so end here.
    x_->close_after_response = true;
  }
  finish_exchange();
}

void ClientConnection::on_upstream_error(UpstreamError err) {
  uncork();  // what arrived before the failure still goes out
  x_->upstream = nullptr;
  release_slot();
  if (state_ == ClientState::Closing) return;
  if (x_->response_started || state_ == ClientState::Tunnel) {
    // Never present a truncated body as complete: no final chunk, and the
    // connection ends.
    spdlog::warn("upstream {}: {} during response", x_->pool->config().name, to_string(err));
    close();
    return;
  }
  retry_or_fail(err);
}

void ClientConnection::retry_or_fail(UpstreamError err) {
  x_->upstream = nullptr;
  release_slot();
  // Retry only when the request can be replayed exactly: no body byte has
  // left the client buffer, and either nothing reached the app or the
  // method is idempotent and the app closed without answering.
  bool nothing_sent = err == UpstreamError::ConnectFailed || err == UpstreamError::ConnectTimeout;
  // A body still whole in body_buf can be sent again; a streamed one cannot.
  bool replayable = !x_->body_streamed && (x_->body_bytes == 0 || x_->request_done) &&
                    (nothing_sent || (err == UpstreamError::ClosedEarly &&
                                      is_idempotent(x_->head.method_view())));
  if (replayable && x_->attempts_left > 0) {
    --x_->attempts_left;
    ++upstream_metrics().retries;
    x_->body_flowing = false;
    auto server = x_->pool->acquire(x_->tried);
    if (!server) server = x_->pool->acquire(0);  // a single server: try it again
    if (server) {
      x_->slot_held = true;
      use_server(*server);
      return;
    }
  }
  int status = (err == UpstreamError::ConnectTimeout || err == UpstreamError::ResponseTimeout)
                   ? 504
                   : 502;
  send_local(status, status == 504 ? "upstream timed out\n" : "bad gateway\n", nullptr,
             !x_->request_done);
}

void ClientConnection::on_upstream_drained() {
  if (x_->upstream != nullptr && x_->upstream->write_queued() < kLowWater) update_read_state();
}

void ClientConnection::on_upstream_tunnel_data(const char* data, size_t len) {
  uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  write(&b, 1);
  if (x_->upstream != nullptr && writer_.queued() > kHighWater) x_->upstream->pause_reading();
}

void ClientConnection::release_slot() {
  if (!x_->slot_held) return;
  x_->slot_held = false;
  x_->pool->release(x_->server_index);
}

void ClientConnection::drop_upstream() {
  if (x_->upstream != nullptr) {
    x_->upstream->abort();
    x_->upstream = nullptr;
  }
  release_slot();
  if (x_->pool != nullptr && state_ == ClientState::Queued) x_->pool->dequeue(this);
}

// --- finishing a request -----------------------------------------------------------------

bool ClientConnection::want_keep_alive() const {
  return x_->head.keep_alive && !draining_ && !x_->close_after_response && !server_.draining();
}

void ClientConnection::finish_exchange() {
  if (!x_->request_done || !x_->response_done) return;
  record_request();
  if (x_->close_after_response || !want_keep_alive()) {
    transition(ClientState::Draining);
    update_read_state();
    if (writer_.queued() == 0) close();
    return;
  }
  next_request();
}

void ClientConnection::next_request() {
  if (!in_.empty()) {
    // A pipelined request is already here.
    start_request_head();
    process_input();
    return;
  }
  // Idle: nothing of the last request is kept (the config snapshot, the
  // route, the buffers all go back to their pools).
  release_exchange();
  in_.release_if_empty();
  transition(ClientState::Idle);
  update_read_state();
}

void ClientConnection::send_local(int status, std::string_view body,
                                  const config::HeaderList* headers, bool close_after,
                                  uint32_t retry_after) {
  if (!x_->request_done || !want_keep_alive()) close_after = true;
  x_->close_after_response = close_after;
  const bool http10 = x_->head.http_major == 1 && x_->head.http_minor == 0;
  x_->out.clear();
  build_local_response(x_->out, {.status = status,
                              .body = body,
                              .headers = headers,
                              .close = close_after,
                              .keep_alive_10 = http10 && !close_after,
                              .head_request = x_->head.method_view() == "HEAD",
                              .retry_after = retry_after});
  x_->response_started = true;
  x_->response_done = true;
  x_->status = static_cast<uint16_t>(status);
  const bool bodiless = status < 200 || status == 204 || status == 304 ||
                        x_->head.method_view() == "HEAD";
  x_->sent_body = bodiless ? 0 : body.size();
  write(x_->out);
  record_request();
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
  x_->request_done = false;  // forces close: the rest of the input is not trusted
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
  if (self->writer_.queued() < kLowWater && self->x_ != nullptr &&
      self->x_->upstream != nullptr) {
    self->x_->upstream->resume_reading();
  }
  if (self->state_ == ClientState::Proxying) self->arm_timer();
}

UpstreamMetrics& ClientConnection::upstream_metrics() {
  return server_.metrics().upstreams[x_->pool->config().name];
}

void ClientConnection::record_request() {
  if (x_->logged) return;
  x_->logged = true;
  const uint64_t duration_us = (uv_hrtime() - x_->started_ns) / 1000;
  Metrics& m = server_.metrics();
  m.response_body_bytes += x_->sent_body;
  static const std::string kNoRoute;
  RouteMetrics& rm = m.routes[x_->route != nullptr ? x_->route->name : kNoRoute];
  ++rm.by_class[x_->status >= 100 && x_->status < 600 ? x_->status / 100 : 0];
  rm.duration.observe_us(duration_us);

  AccessLog& log = server_.access_log();
  if (!log.enabled()) return;
  const RequestHead& h = x_->head;
  AccessEntry e;
  e.client_ip = client_ip_;
  e.method = h.method_view();
  e.target = h.target_view();
  e.http_minor = h.http_minor;
  e.status = x_->status;
  e.body_bytes = x_->sent_body;
  e.referer = h.header("referer");
  e.user_agent = h.header("user-agent");
  if (x_->route != nullptr) e.route = x_->route->name;
  if (x_->upstream_addr != nullptr) e.upstream = *x_->upstream_addr;
  e.duration_us = duration_us;
  log.log(e);
}

// --- shutdown ------------------------------------------------------------------------------------

void ClientConnection::drain() {
  draining_ = true;
  if (state_ == ClientState::Idle) close();
}

void ClientConnection::close() {
  if (state_ == ClientState::Closing) return;
  if (x_ != nullptr) {
    if (state_ == ClientState::Queued) {
      ++upstream_metrics().shed[static_cast<size_t>(ShedReason::ClientGone)];
    }
    // A request cut short (client gone, upstream died mid-response) is
    // logged too: with its status, or 499 if nothing was sent.
    if (x_->head_seen) record_request();
    drop_upstream();
  }
  state_ = ClientState::Closing;
  server_.timers().cancel(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConnection::on_closed);
}

void ClientConnection::on_closed(uv_handle_t* h) {
  auto* self = static_cast<ClientConnection*>(h->data);
  self->server_.release(self);
}

}  // namespace sluice::proxy
