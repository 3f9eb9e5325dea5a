#include "proxy/client_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <utility>

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
// With buffer_request off, a request body up to this size is still read
// completely before the request takes an upstream slot; larger bodies
// stream after their first kBodyBuffer bytes. (With it on, all of it is.)
constexpr size_t kBodyBuffer = 64 * 1024;
// A side whose bytes wait for a temp-file write beyond this is not read
// from until the disk catches up: memory stays bounded whatever its pace.
constexpr size_t kSpillPending = 256 * 1024;
// Response bytes of one upstream read smaller than this are copied and sent
// together; larger pieces go out directly (with what was held, in one writev).
constexpr size_t kCorkLimit = 16 * 1024;
// A request the busy app turned away waits again this many times. Twice,
// not once: the lowered limit climbs back by probing one more request at a
// time, and a probe that meets a still-full app must not cost a request
// that was already turned away once its answer.
constexpr uint8_t kMaxRequeues = 2;

// Writes "<hex len>\r\n", the line that opens a chunk; returns its length.
size_t chunk_size_line(char (&out)[24], size_t len) {
  auto [end, ec] = std::to_chars(out, out + 20, len, 16);
  (void)ec;
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<size_t>(end - out);
}

// Loop thread only.
thread_local FreeList<Exchange, 4096> free_exchanges;

// What a finished response says about its server; `others`: requests of
// ours the server holds besides this one.
Outcome outcome_of_status(uint16_t status, uint32_t others) {
  if (status == 503) return others > 0 ? Outcome::Overload : Outcome::Failure;
  if (status >= 500) return Outcome::Failure;
  return Outcome::Success;
}

Outcome outcome_of_error(UpstreamError err, uint32_t others) {
  // Refused while it holds requests of ours: a full accept backlog, i.e. busy.
  if (err == UpstreamError::ConnectFailed && others > 0) return Outcome::Overload;
  return Outcome::Failure;
}

}  // namespace

void Exchange::reset() {
  head.clear();
  upstream_head.clear();
  out.clear();
  cfg.reset();
  route = nullptr;
  link = nullptr;
  upstream = nullptr;
  server = nullptr;
  slot_ns = 0;
  in_flight_at_start = 0;
  budget_ns = 0;
  requeues = 0;
  tried = 0;
  body_bytes = 0;
  attempts_left = 0;
  body.reset();      // closes a file of the last request's; keeps the memory block
  response.reset();
  body_replaying = response_spilling = false;
  slot_held = waiting_admitted = head_seen = request_done = body_flowing = false;
  body_streamed = false;
  logged = false;
  status = 0;
  sent_body = 0;
  started_ns = 0;
  upstream_addr.clear();
  queued_ns = 0;
  expect_continue = response_started = response_done = chunk_response = false;
  close_after_response = false;
}

ClientConnection::ClientConnection(Server& server, ConnId id, uint32_t gen, config::ConfigPtr cfg,
                                   uint16_t listener)
    : server_(server), id_(id), gen_(gen), conn_cfg_(std::move(cfg)), listener_index_(listener) {
  timer_.owner = this;
}

ClientConnection::~ClientConnection() { release_exchange(); }

void ClientConnection::take_exchange() {
  if (x_ == nullptr) {
    x_ = free_exchanges.take();
    x_->reset();
    x_->events.conn = this;
  }
}

void ClientConnection::release_exchange() {
  if (x_ == nullptr) return;
  x_->cfg.reset();  // a cached exchange must not pin an old config
  x_->body.reset();  // nor keep a temp file open, or call back a connection gone
  x_->response.reset();
  // Every way out of Queued leaves the queue first; this only makes sure a
  // recycled exchange can never be linked into one.
  if (x_->waiting_admitted) leave_queue();
  free_exchanges.give(x_);
  x_ = nullptr;
}

bool ClientConnection::accept(int fd, const sockaddr_storage& peer) {
  if (uv_poll_init(server_.loop(), &poll_, fd) != 0) {
    // Not for a descriptor just accepted; but without a handle there is no
    // close callback to wait for.
    ::close(fd);
    state_ = ClientState::Closing;
    server_.release(this);
    return false;
  }
  poll_.data = this;
  fd_ = fd;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
    peer_known_ = true;
    peer_v6_ = peer.ss_family == AF_INET6;
    peer_ = peer_key(peer);
    if (!server_.admit(id_, peer, &peer_, &peer_counted_)) {  // max_connections_per_ip
      close();
      return false;
    }
  }
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
  const auto& t = listener().timeouts;
  config::Duration d{0};
  switch (state_) {
    case ClientState::Idle: d = t.idle; break;
    case ClientState::ReadingHead: d = t.header; break;
    case ClientState::ReadingBody: d = t.body; break;
    case ClientState::Queued: d = x_->link->config().queue.timeout; break;
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
      self->leave_queue();
      self->shed(ShedReason::QueueTimeout);
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
  if (state_ == ClientState::ReadingBody && x_->body.pending() > kSpillPending) {
    want = false;  // the disk is slower than the client
  }
  if (state_ == ClientState::Draining) want = false;
  if (want == reading_) return;
  reading_ = want;
  update_poll();
}

void ClientConnection::update_poll() {
  if (state_ == ClientState::Closing) return;
  const uint8_t want = (reading_ ? UV_READABLE : 0) | (writer_.queued() > 0 ? UV_WRITABLE : 0);
  if (want == poll_events_) return;
  poll_events_ = want;
  if (want != 0) uv_poll_start(&poll_, want, &ClientConnection::on_poll);
  else uv_poll_stop(&poll_);
}

void ClientConnection::on_poll(uv_poll_t* h, int status, int events) {
  auto* self = static_cast<ClientConnection*>(h->data);
  if (status < 0) {  // the socket has an error pending (a reset, say)
    self->close();
    return;
  }
  if (events & UV_WRITABLE) self->flush_output();
  if ((events & UV_READABLE) && self->reading_ && self->state_ != ClientState::Closing) {
    self->read_socket();
  }
}

void ClientConnection::read_socket() {
  // Like libuv's streams: read again only while reads fill the buffer, and
  // a bounded number of times, so that one busy client cannot hold the loop.
  for (int i = 0; i < 32 && reading_ && state_ != ClientState::Closing; ++i) {
    uv_buf_t buf = in_.writable();
    if (buf.len == 0) {  // full: the parser is paused until bytes are consumed
      update_read_state();
      return;
    }
    ssize_t n = ::read(fd_, buf.base, buf.len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      on_read(-errno);
      return;
    }
    on_read(n == 0 ? static_cast<ssize_t>(UV_EOF) : n);
    if (static_cast<size_t>(n) < buf.len) return;  // the socket is drained
  }
}

void ClientConnection::on_read(ssize_t nread) {
  if (nread < 0) {
    // A client that finished its request and half-closed still gets its
    // response; any other EOF or error means the client is gone. Not while
    // queued, though: EOF there is far likelier a client that gave up than
    // a half-close, and a request nobody waits for must not take an app
    // thread (nginx and HAProxy's abortonclose judge it the same way).
    bool request_in = (state_ == ClientState::Proxying ||
                       state_ == ClientState::Routing ||
                       state_ == ClientState::Connecting) &&
                      x_->request_done;
    if (nread == UV_EOF && request_in) {
      peer_eof_ = true;
      x_->close_after_response = true;
      reading_ = false;
      update_poll();
      return;
    }
    close();
    return;
  }
  in_.commit(static_cast<size_t>(nread));
  if (state_ == ClientState::Tunnel) {
    auto data = in_.readable();
    in_.consume(data.size());
    if (x_->upstream == nullptr || x_->upstream->send(data) != 0) {
      close();
      return;
    }
    update_read_state();
    return;
  }
  if (state_ == ClientState::Idle) start_request_head();
  process_input();
}

void ClientConnection::start_request_head() {
  take_exchange();
  x_->reset();
  // A fresh parser per request: we only get here at a message boundary.
  x_->parser.start(x_->head, x_->events, listener().limits);
  if (peer_known_) format_peer(peer_, peer_v6_, x_->head.client_ip);
  x_->started_ns = uv_hrtime();
  transition(ClientState::ReadingHead);
}

// Feeds buffered bytes to the parser when the current state may consume
// them: the head while reading it, the body once it may flow upstream.
void ClientConnection::process_input() {
  bool may_parse = state_ == ClientState::ReadingHead || state_ == ClientState::ReadingBody ||
                   (state_ == ClientState::Proxying && x_->body_flowing && !x_->request_done);
  if (may_parse && !in_.empty()) {
    ParseStep step = x_->parser.execute(in_.readable());
    if (state_ == ClientState::Closing) return;
    in_.consume(step.used);
    x_->head_seen = x_->parser.head_done();
    if (step.reject != 0) {
      if (step.error != nullptr) {
        spdlog::debug("client {}: bad request: {}", x_->head.client_ip, step.error);
      }
      if (x_->response_started) close();
      else {
        drop_upstream();
        reject(step.reject);
      }
      return;
    }
    if (state_ == ClientState::ReadingHead && x_->head_seen) {
      x_->expect_continue = x_->parser.expect_continue();
      head_complete();
    }
    else if (state_ == ClientState::ReadingBody && x_->body.error() != 0) {
      body_spill_failed();
      return;
    }
    else if (state_ == ClientState::ReadingBody &&
             (x_->request_done || (!x_->route->buffer_request && x_->body.size() >= kBodyBuffer))) {
      // Spill writes may still be in flight: sending the file part waits for them.
      x_->body_flowing = false;
      start_forward();
    }
    else if (state_ == ClientState::Proxying && x_->request_done && x_->upstream != nullptr) {
      x_->upstream->request_sent();
      if (x_->response_done) finish_exchange();
    }
    // timeouts.body is the longest wait between two reads of the body.
    if (state_ == ClientState::Proxying || state_ == ClientState::ReadingBody) arm_timer();
  }
  update_read_state();
}

// --- request body (RequestSink) ------------------------------------------------------

bool ClientConnection::on_request_body(const char* at, size_t len) {
  x_->body_bytes += len;
  char size_line[24];
  size_t size_len = x_->head.chunked ? chunk_size_line(size_line, len) : 0;
  Exchange& x = *x_;
  if (x.upstream == nullptr) {
    // Still buffering: keep the bytes exactly as they will go upstream.
    x.body.append(size_line, size_len);
    x.body.append(at, len);
    if (size_len > 0) x.body.append("\r\n", 2);
    // Data callbacks cannot pause llhttp; process_input() stops parsing
    // once this execute() returns, so the buffer overshoots by one read.
    return true;
  }
  x.body_streamed = true;
  uv_buf_t bufs[3] = {uv_buf_init(size_line, static_cast<unsigned>(size_len)),
                      uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(len)),
                      uv_buf_init(const_cast<char*>("\r\n"), size_len > 0 ? 2 : 0)};
  return x.upstream->send(bufs, 3) == 0;
}

bool ClientConnection::on_request_end() {
  x_->request_done = true;
  if (x_->head.chunked) {
    // Trailers are not forwarded: the upstream head announced none.
    if (x_->upstream == nullptr) x_->body.append("0\r\n\r\n", 5);
    else if (x_->upstream->send("0\r\n\r\n") != 0) return false;
  }
  return true;
}

// --- buffered bodies in temp files (SpillOwner) -----------------------------------------

void ClientConnection::on_spill_written(SpillBuffer& buffer) {
  if (&buffer == &x_->body) {
    if (buffer.error() != 0) body_spill_failed();
    else update_read_state();  // reading waits while too much is unwritten
    return;
  }
  if (buffer.error() != 0) {
    spdlog::error("client {}: cannot buffer a response in {}: {}", x_->head.client_ip,
                  x_->cfg->buffering.temp_dir, uv_strerror(buffer.error()));
    close();  // bytes are lost: never present the rest as complete
    return;
  }
  if (x_->upstream != nullptr && !response_spill_full()) x_->upstream->resume_reading();
  feed_response();
}

void ClientConnection::on_spill_read(SpillBuffer& buffer, const char* data, size_t len) {
  if (&buffer == &x_->body) {
    if (len == 0) {
      body_spill_failed();
      return;
    }
    // A try that ended meanwhile (answered early, failed) takes no more.
    if (!x_->body_replaying || x_->upstream == nullptr) return;
    uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    if (x_->upstream->send(&b, 1) != 0) return;  // the error event follows
    send_body_file();
    return;
  }
  if (len == 0) {
    spdlog::error("client {}: cannot read a buffered response back from {}: {}", x_->head.client_ip,
                  x_->cfg->buffering.temp_dir, uv_strerror(buffer.error()));
    close();
    return;
  }
  x_->sent_body += len;
  if (x_->chunk_response) {
    char size_line[24];
    size_t size_len = chunk_size_line(size_line, len);
    uv_buf_t bufs[3] = {uv_buf_init(size_line, static_cast<unsigned>(size_len)),
                        uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len)),
                        uv_buf_init(const_cast<char*>("\r\n"), 2)};
    write(bufs, 3);
  } else {
    uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    write(&b, 1);
  }
  feed_response();
}

// The file part of a buffered request body goes upstream a piece at a
// time, each read once the app's connection has taken the last.
void ClientConnection::send_body_file() {
  if (!x_->body_replaying || x_->upstream == nullptr || x_->body.reading()) return;
  if (x_->body.unread() == 0) {
    x_->body_replaying = false;
    x_->upstream->request_sent();
    update_read_state();
    return;
  }
  if (x_->upstream->write_queued() > kHighWater) return;  // on_upstream_drained() resumes
  if (!x_->body.read() && x_->body.error() != 0) body_spill_failed();
}

void ClientConnection::body_spill_failed() {
  spdlog::error("client {}: cannot buffer a request body in {}: {}", x_->head.client_ip,
                x_->cfg->buffering.temp_dir, uv_strerror(x_->body.error()));
  if (x_->response_started) {
    close();
    return;
  }
  drop_upstream();
  reject(500);
}

bool ClientConnection::spill_response() {
  if (x_->cfg->buffering.max_response_file == 0) return false;
  if (!x_->response.configured()) {
    x_->response.configure(server_.loop(), &x_->events,
                           {.memory_limit = 0, .temp_dir = x_->cfg->buffering.temp_dir});
  }
  x_->response_spilling = true;
  return true;
}

// The app waits while the disk lags, or once the file holds its most.
bool ClientConnection::response_spill_full() const {
  return x_->response.pending() > kSpillPending ||
         x_->response.file_size() >= x_->cfg->buffering.max_response_file;
}

void ClientConnection::feed_response() {
  if (!x_->response_spilling || state_ == ClientState::Closing || x_->response.reading()) return;
  // The client's queue takes the next piece once below half its share of memory.
  if (writer_.queued() > x_->cfg->buffering.response_memory / 2) return;  // on_written() resumes
  if (x_->response.unread() > 0) {
    if (!x_->response.read()) close();  // only a failed file refuses
    return;
  }
  // Drained: the file starts over, and bytes go straight to the client again.
  x_->response.discard_read();
  x_->response_spilling = false;
  if (x_->response_done) finish_response();
  else if (x_->upstream != nullptr) x_->upstream->resume_reading();
}

// --- routing -------------------------------------------------------------------------

void ClientConnection::head_complete() {
  x_->head.tls = false;
  RouteJob job;
  job.conn = id_;
  job.gen = gen_;
  job.cfg = server_.config();
  job.head = std::move(x_->head);
  job.slashes = listener().encoded_slashes;
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
  // Without buffer_request the body streams once kBodyBuffer is in memory,
  // so it never needs the file.
  const config::Buffering& b = x_->cfg->buffering;
  x_->body.configure(server_.loop(), &x_->events,
                     {.memory_limit = x_->route->buffer_request ? b.request_memory : SIZE_MAX,
                      .temp_dir = b.temp_dir});
  if (x_->expect_continue && in_.empty()) {
    x_->expect_continue = false;
    write("HTTP/1.1 100 Continue\r\n\r\n");
  }
  x_->parser.resume();
  process_input();
}

void ClientConnection::start_forward() {
  const auto& up = x_->cfg->upstreams[*x_->route->upstream];
  x_->link = server_.link(up.name);
  if (x_->link == nullptr) {
    send_local(502, "no such upstream\n", nullptr, true);
    return;
  }
  x_->attempts_left = up.retries.attempts;
  x_->budget_ns = client_budget_ns();
  try_acquire(true);
}

// The client's own budget from the configured header: seconds ("2.5") or a
// duration ("800ms"). Anything unreadable counts as no budget.
uint64_t ClientConnection::client_budget_ns() const {
  const std::string& name = x_->link->config().queue.deadline_header;
  if (name.empty()) return 0;
  std::string_view v = x_->head.header(name);
  if (v.empty()) return 0;
  double number = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), number);
  if (ec != std::errc() || !(number > 0)) return 0;
  std::string_view unit(end, static_cast<size_t>(v.data() + v.size() - end));
  double scale = unit.empty() || unit == "s" ? 1e9 : unit == "ms" ? 1e6 : 0;
  if (scale == 0) return 0;
  return static_cast<uint64_t>(std::min(number * scale, 1e15));
}

void ClientConnection::try_acquire(bool new_request) {
  UpstreamPool& pool = x_->link->pool();
  if (SlotGrant g = pool.acquire(0, new_request)) {
    use_server(g);
    return;
  }
  if (pool.all_down()) {
    shed(ShedReason::Unavailable);
    return;
  }
  // Every server is at its limit: wait, unless waiting cannot help.
  x_->waiting.conn = this;
  if (auto reason = pool.admit(&x_->waiting, x_->route->priority, x_->budget_ns)) {
    shed(*reason);
    return;
  }
  x_->waiting_admitted = true;
  x_->queued_ns = uv_hrtime();
  transition(ClientState::Queued);
}

// sluice's own 503: the request never reached the app. Retry-After says
// when the queue will have drained at the pace it has been draining.
void ClientConnection::shed(ShedReason reason) {
  ++upstream_metrics().shed[static_cast<size_t>(reason)];
  send_local(503, reason == ShedReason::Unavailable ? "no upstream server available\n" : "upstream busy\n",
             nullptr, !x_->request_done, x_->link->pool().retry_after());
}

void QueueEntry::on_slot_granted(UpstreamServer* server, uint32_t in_flight, size_t index) {
  conn->on_slot_granted({.server = server, .in_flight = in_flight, .index = index});
}
void QueueEntry::on_shed(ShedReason reason) { conn->on_shed(reason); }

void ExchangeEvents::on_upstream_ready() { conn->on_upstream_ready(); }
void ExchangeEvents::on_upstream_head(ResponseHead& head) { conn->on_upstream_head(head); }
void ExchangeEvents::on_upstream_body(const char* data, size_t len) {
  conn->on_upstream_body(data, len);
}
void ExchangeEvents::on_upstream_done() { conn->on_upstream_done(); }
void ExchangeEvents::on_upstream_error(UpstreamError err) { conn->on_upstream_error(err); }
void ExchangeEvents::on_upstream_drained() { conn->on_upstream_drained(); }
void ExchangeEvents::on_upstream_batch(bool begin) { conn->on_upstream_batch(begin); }
void ExchangeEvents::on_upstream_tunnel_data(const char* data, size_t len) {
  conn->on_upstream_tunnel_data(data, len);
}
bool ExchangeEvents::on_request_body(const char* at, size_t len) {
  return conn->on_request_body(at, len);
}
bool ExchangeEvents::on_request_end() { return conn->on_request_end(); }
void ExchangeEvents::on_spill_written(SpillBuffer& buffer) { conn->on_spill_written(buffer); }
void ExchangeEvents::on_spill_read(SpillBuffer& buffer, const char* data, size_t len) {
  conn->on_spill_read(buffer, data, len);
}

// A letter delivered means the waiter is off the queue; one that finds the
// request no longer waiting (which leave_queue() prevents) gives its slot back.
void ClientConnection::on_slot_granted(const SlotGrant& grant) {
  x_->waiting_admitted = false;
  if (state_ != ClientState::Queued) {
    x_->link->pool().release(grant.server, Outcome::Neutral);
    return;
  }
  upstream_metrics().queue_wait.observe_us((uv_hrtime() - x_->queued_ns) / 1000);
  use_server(grant);
}

void ClientConnection::on_shed(ShedReason reason) {
  x_->waiting_admitted = false;
  if (state_ != ClientState::Queued) return;
  shed(reason);
}

// The server's other requests, while this one holds its slot.
uint32_t ClientConnection::others_in_flight() const {
  if (x_->server == nullptr || !x_->slot_held) return 0;
  uint32_t n = x_->link->pool().in_flight_of(x_->server);
  return n > 0 ? n - 1 : 0;
}

void ClientConnection::leave_queue() {
  x_->waiting_admitted = false;
  x_->link->pool().leave(&x_->waiting);
}

void ClientConnection::use_server(const SlotGrant& grant) {
  UpstreamServer* server = grant.server;
  x_->slot_held = true;
  x_->server = server;
  x_->slot_ns = uv_hrtime();
  x_->in_flight_at_start = grant.in_flight;
  x_->upstream_addr = server->address();
  if (grant.index < kMaxServers) x_->tried |= TriedSet{1} << grant.index;
  x_->response_started = x_->response_done = false;
  transition(ClientState::Connecting);
  if (UpstreamConnection* idle = x_->link->take_idle(server)) {
    x_->upstream = idle;
    idle->attach(&x_->events);
    on_upstream_ready();
    return;
  }
  x_->upstream = UpstreamConnection::connect(x_->link, server, &x_->events);
  if (x_->upstream == nullptr) retry_or_fail(UpstreamError::ConnectFailed);
}

void ClientConnection::on_upstream_ready() {
  transition(ClientState::Proxying);
  x_->upstream->begin_request(x_->head.method_view() == "HEAD", is_websocket_upgrade(x_->head));
  std::string_view memory = x_->body.memory();
  uv_buf_t out[2] = {
      uv_buf_init(x_->upstream_head.data(), static_cast<unsigned>(x_->upstream_head.size())),
      uv_buf_init(const_cast<char*>(memory.data()), static_cast<unsigned>(memory.size()))};
  if (x_->upstream->send(out, 2) != 0) return;  // the error event follows
  if (!x_->head.has_body) {
    x_->upstream->request_sent();
    update_read_state();
    return;
  }
  if (x_->request_done && x_->body.file_size() > 0) {
    // The rest of the body is in the file; from its start on every try.
    x_->body.rewind();
    x_->body_replaying = true;
    send_body_file();
    return;
  }
  if (x_->request_done) {
    x_->upstream->request_sent();
    update_read_state();
    return;
  }
  // The body is larger than the buffer: the rest streams.
  x_->body_flowing = true;
  x_->parser.resume();
  process_input();
}

void ClientConnection::on_upstream_head(ResponseHead& h) {
  if (h.status == 503 && others_in_flight() > 0 && x_->requeues < kMaxRequeues &&
      replayable()) {
    // The app's own "busy": its body is not worth reading. Nothing has
    // been held for the client yet, so the batch ends here.
    corked_ = false;
    UpstreamConnection* up = std::exchange(x_->upstream, nullptr);
    up->abort();
    release_slot(Outcome::Overload);
    requeue_if_busy(Outcome::Overload);
    return;
  }
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
  if (x_->response_spilling) {
    // Behind bytes already in the file: these go there too, in order.
    x_->response.append(data, len);
    if (x_->response.error() != 0) close();
    else if (response_spill_full()) x_->upstream->pause_reading();
    return;
  }
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
  if (x_->upstream == nullptr) return;
  if (!x_->route->buffer_response) {
    if (writer_.queued() > kHighWater) x_->upstream->pause_reading();
  } else if (writer_.queued() > x_->cfg->buffering.response_memory) {
    // The client is slower than the app: from here on the body waits in a
    // file (or, with no file allowed, the app waits).
    if (!spill_response()) x_->upstream->pause_reading();
  }
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
  // Only a 503 asks how busy the server is: that takes the pool's lock.
  release_slot(outcome_of_status(x_->status, x_->status == 503 ? others_in_flight() : 0));
  x_->response_done = true;
  if (x_->response_spilling) {
    // The app and its connection are free already; the rest of the body
    // and then the end reach the client from the file, at its pace.
    uncork();
    if (!x_->request_done) {
      x_->close_after_response = true;
      x_->body_flowing = false;  // a body nobody will read is not taken in meanwhile
    }
    feed_response();
    return;
  }
  finish_response();
}

void ClientConnection::finish_response() {
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
  // A kept-alive connection the app closed just as we reused it says
  // nothing about the app's health.
  const bool says_nothing = (err == UpstreamError::ClosedEarly && x_->upstream->reused()) ||
                           state_ == ClientState::Tunnel;  // a tunnel's end is no fault
  x_->upstream = nullptr;
  const Outcome outcome =
      says_nothing ? Outcome::Neutral : outcome_of_error(err, others_in_flight());
  release_slot(outcome);
  if (state_ == ClientState::Closing) return;
  if (x_->response_started || state_ == ClientState::Tunnel) {
    // Never present a truncated body as complete: no final chunk, and the
    // connection ends.
    spdlog::warn("upstream {}: {} during response", x_->link->config().name, to_string(err));
    close();
    return;
  }
  if (requeue_if_busy(outcome)) return;
  retry_or_fail(err);
}

// The request is whole on our side: it can be sent again as it was.
bool ClientConnection::replayable() const {
  return !x_->body_streamed && (x_->body_bytes == 0 || x_->request_done);
}

// Busy is not dead: an app that turned the request away (503, or refused
// the connection) while it had others of ours has no free thread. The
// slot was released as Overload (lowering the server's limit); the request
// waits for a slot again instead of failing, up to kMaxRequeues times.
bool ClientConnection::requeue_if_busy(Outcome outcome) {
  if (outcome != Outcome::Overload || x_->requeues >= kMaxRequeues || !replayable()) return false;
  ++x_->requeues;
  x_->body_flowing = false;
  x_->response_started = x_->response_done = false;
  x_->status = 0;
  try_acquire();
  return true;
}

void ClientConnection::retry_or_fail(UpstreamError err) {
  x_->upstream = nullptr;
  release_slot();
  // Retry only when the request can be replayed exactly: no body byte has
  // left the client buffer, and either nothing reached the app or the
  // method is idempotent and the app closed without answering.
  bool nothing_sent = err == UpstreamError::ConnectFailed || err == UpstreamError::ConnectTimeout;
  // A body still whole in body_buf can be sent again; a streamed one cannot.
  bool may_retry = replayable() && (nothing_sent || (err == UpstreamError::ClosedEarly &&
                                                     is_idempotent(x_->head.method_view())));
  // Retries spend the upstream's budget, so a failing app does not get
  // twice the load from its own retries.
  bool retry = may_retry && x_->attempts_left > 0;
  if (retry && !x_->link->pool().allow_retry()) {
    ++upstream_metrics().retries_denied;
    retry = false;
  }
  if (retry) {
    --x_->attempts_left;
    ++upstream_metrics().retries;
    x_->body_flowing = false;
    SlotGrant g = x_->link->pool().acquire(x_->tried);
    if (!g) g = x_->link->pool().acquire(0);  // a single server: try it again
    if (g) {
      use_server(g);
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
  if (x_->body_replaying) send_body_file();
}

void ClientConnection::on_upstream_tunnel_data(const char* data, size_t len) {
  uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  write(&b, 1);
  if (x_->upstream != nullptr && writer_.queued() > kHighWater) x_->upstream->pause_reading();
}

void ClientConnection::release_slot(Outcome outcome) {
  if (!x_->slot_held) return;
  x_->slot_held = false;
  x_->link->pool().release(x_->server, outcome, uv_hrtime() - x_->slot_ns, x_->in_flight_at_start);
}

void ClientConnection::drop_upstream() {
  if (x_->upstream != nullptr) {
    x_->upstream->abort();
    x_->upstream = nullptr;
  }
  release_slot();
  if (x_->waiting_admitted) leave_queue();
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
  if (writer_.write(fd_, bufs, n) != 0) {
    close();
    return;
  }
  if (writer_.queued() > 0) {
    update_poll();
    if (state_ == ClientState::Proxying) arm_timer();
  }
}

void ClientConnection::flush_output() {
  const size_t before = writer_.queued();
  if (writer_.flush(fd_) != 0) {
    close();
    return;
  }
  update_poll();
  if (writer_.queued() < before) after_write();
}

void ClientConnection::after_write() {
  if (state_ == ClientState::Draining) {
    if (writer_.queued() == 0) close();
    return;
  }
  if (x_ != nullptr && x_->response_spilling) {
    feed_response();  // the file, not the socket, decides when the app may send
    if (state_ == ClientState::Closing) return;
  } else if (writer_.queued() < kLowWater && x_ != nullptr &&
             x_->upstream != nullptr) {
    x_->upstream->resume_reading();
  }
  if (state_ == ClientState::Proxying) arm_timer();
}

UpstreamMetrics& ClientConnection::upstream_metrics() {
  return server_.metrics().upstreams[x_->link->config().name];
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
  e.client_ip = x_->head.client_ip;
  e.method = h.method_view();
  e.target = h.target_view();
  e.http_minor = h.http_minor;
  e.status = x_->status;
  e.body_bytes = x_->sent_body;
  e.referer = h.header("referer");
  e.user_agent = h.header("user-agent");
  if (x_->route != nullptr) e.route = x_->route->name;
  if (!x_->upstream_addr.empty()) e.upstream = x_->upstream_addr;
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
    // Temp files close now, not when the connection's memory goes.
    x_->body.reset();
    x_->response.reset();
  }
  state_ = ClientState::Closing;
  server_.timers().cancel(timer_);
  writer_.clear();
  // uv_close stops the poll at once, so the descriptor may go now; the
  // handle's memory (this connection) waits for the close callback.
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &ClientConnection::on_closed);
  ::close(fd_);
  fd_ = -1;
}

void ClientConnection::on_closed(uv_handle_t* h) {
  auto* self = static_cast<ClientConnection*>(h->data);
  self->server_.release(self);
}

}  // namespace sluice::proxy
