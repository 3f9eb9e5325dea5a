#include "tests/support/backend_conn.h"

#include <strings.h>

#include <utility>

#include "tests/support/backend.h"

namespace sluice::test {

namespace {

// Above this much unsent output (or input held back while a reply is
// deferred) the connection stops reading: backpressure on a client that
// sends faster than it reads.
constexpr size_t kHighWater = 1 << 20;

// Bodies kept for /echo are released after the reply when this large, so an
// idle keep-alive connection does not hold on to a big buffer.
constexpr size_t kKeepCapacity = 1 << 20;

}  // namespace

BackendConn::BackendConn(Backend& owner) : owner_(owner) {
  llhttp_init(&parser_, HTTP_REQUEST, &parser_settings());
  parser_.data = this;
}

void BackendConn::accept(Backend& owner, uv_stream_t* server) {
  auto* c = new BackendConn(owner);
  owner.add(c);
  uv_tcp_init(owner.loop(), &c->tcp_);
  uv_timer_init(owner.loop(), &c->timer_);
  c->tcp_.data = c->timer_.data = c;
  c->open_handles_ = 2;
  if (uv_accept(server, c->stream()) != 0) {
    c->close();
    return;
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  ++owner.stats().connections;
  c->update_reading();
}

void BackendConn::close() {
  if (closing_) return;
  closing_ = true;
  finish_request();
  auto* tcp = reinterpret_cast<uv_handle_t*>(&tcp_);
  if (!reset_on_close_ || uv_tcp_close_reset(&tcp_, on_closed) != 0) uv_close(tcp, on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void BackendConn::on_closed(uv_handle_t* h) {
  auto* c = static_cast<BackendConn*>(h->data);
  if (--c->open_handles_ > 0) return;
  c->owner_.remove(c);
  delete c;
}

void BackendConn::finish_request() {
  if (!in_flight_) return;
  in_flight_ = false;
  owner_.stats().request_finished();
}

// ---- Input ----------------------------------------------------------------

void BackendConn::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  Backend& owner = static_cast<BackendConn*>(h->data)->owner_;
  *buf = uv_buf_init(owner.read_buffer(), static_cast<unsigned>(owner.read_buffer_size()));
}

void BackendConn::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<BackendConn*>(s->data);
  if (nread == UV_EOF) return c->on_eof();
  if (nread < 0) return c->close();
  size_t n = static_cast<size_t>(nread);
  switch (c->mode_) {
    case Mode::Parsing:
      c->parse(buf->base, n);
      break;
    case Mode::Sleeping:
    case Mode::Streaming:
      c->backlog_.append(buf->base, n);
      c->update_reading();
      break;
    case Mode::Echoing:
      c->out_.append(buf->base, n);
      c->flush();
      break;
    case Mode::Hanging:
    case Mode::Finishing:
      break;
  }
}

// Proxies and HTTP clients do not half-close, so end of input means the
// client is gone: what is already answered (or echoed) is still sent, a
// deferred reply is dropped.
void BackendConn::on_eof() {
  peer_eof_ = true;
  if (mode_ == Mode::Parsing || mode_ == Mode::Echoing || mode_ == Mode::Finishing) {
    mode_ = Mode::Finishing;
    close_after_write_ = true;
    flush();
  } else {
    close();
  }
}

void BackendConn::update_reading() {
  bool want = !closing_ && !peer_eof_;
  switch (mode_) {
    case Mode::Parsing:
    case Mode::Echoing:
      want = want && pending_output() < kHighWater;
      break;
    case Mode::Sleeping:
    case Mode::Streaming:
      want = want && backlog_.size() < kHighWater;
      break;
    case Mode::Hanging:  // reads only to notice the peer closing
      break;
    case Mode::Finishing:
      want = false;
      break;
  }
  if (want == reading_) return;
  reading_ = want;
  if (want) {
    uv_read_start(stream(), on_alloc, on_read);
  } else {
    uv_read_stop(stream());
  }
}

// Runs llhttp over `data`, answering requests as they complete. The parser
// pauses at the end of each head (to cut the raw head out of the input for
// /headers) and of each message (to answer it, or to stop if the reply is
// deferred: the rest of the input then waits in backlog_).
void BackendConn::parse(const char* data, size_t len) {
  const char* end = data + len;
  const char* cur = data;
  head_from_ = data;
  while (mode_ == Mode::Parsing) {
    llhttp_errno_t err = llhttp_execute(&parser_, cur, static_cast<size_t>(end - cur));
    if (err == HPE_OK) {
      if (in_head_) req_.head.append(head_from_, end);
      break;
    }
    if (err != HPE_PAUSED) {
      fail(body_too_large_ ? too_large_reply() : bad_request_reply());
      break;
    }
    cur = llhttp_get_error_pos(&parser_);
    if (pause_ == Pause::HeadDone) {
      req_.head.append(head_from_, cur);
      in_head_ = false;
      llhttp_resume(&parser_);
    } else {
      in_head_ = true;
      head_from_ = cur;
      dispatch(cur, end);
    }
  }
  flush();
}

void BackendConn::dispatch(const char* rest, const char* end) {
  req_.keep_alive = llhttp_should_keep_alive(&parser_) != 0 && !req_.upgrade;
  req_.body_hash = hasher_.digest();
  req_.body_length = hasher_.length();
  if (in_flight_) ++owner_.stats().requests;  // only requests counted in stats
  Reply r = route(req_, owner_.stats());
  reset_request();

  if (r.kind == Reply::Kind::AfterDelay) {
    deferred_ = std::move(r.bytes);
  } else {
    out_.append(r.bytes);
  }
  switch (r.kind) {
    case Reply::Kind::Now:
      finish_request();
      if (r.close) {
        mode_ = Mode::Finishing;
        close_after_write_ = true;
      } else {
        llhttp_resume(&parser_);
      }
      return;
    case Reply::Kind::AfterDelay:
      mode_ = Mode::Sleeping;
      uv_timer_start(&timer_, on_timer, r.delay_ms, 0);
      break;
    case Reply::Kind::Stream:
      mode_ = Mode::Streaming;
      stream_pos_ = 0;
      stream_left_ = r.stream_length;
      stream_chunked_ = r.chunked;
      break;
    case Reply::Kind::Upgrade:
      finish_request();
      mode_ = Mode::Echoing;
      out_.append(rest, end);  // bytes after the upgrade request are already "WebSocket"
      return;
    case Reply::Kind::Hang:
      mode_ = Mode::Hanging;  // in flight until the connection closes
      return;
    case Reply::Kind::Reset:
      mode_ = Mode::Finishing;
      close_after_write_ = true;
      reset_on_close_ = true;
      return;
  }
  // Sleeping or Streaming: later requests wait until this reply is done.
  close_after_reply_ = r.close;
  backlog_.assign(rest, end);
}

void BackendConn::reset_request() {
  req_.url.clear();
  req_.head.clear();
  req_.websocket_key.clear();
  req_.upgrade = false;
  if (req_.body.capacity() > kKeepCapacity) {
    std::string().swap(req_.body);
  } else {
    req_.body.clear();
  }
  hasher_ = BodyHasher();
  field_.clear();
  field_done_ = false;
}

// Fires when a Sleeping reply is due, and (at once) after a Streaming reply
// has been fully written: either way the deferred request is done.
void BackendConn::on_timer(uv_timer_t* t) {
  auto* c = static_cast<BackendConn*>(t->data);
  if (c->mode_ == Mode::Sleeping) c->out_.append(std::exchange(c->deferred_, {}));
  c->finish_request();
  if (c->close_after_reply_) {
    c->mode_ = Mode::Finishing;
    c->close_after_write_ = true;
    c->flush();
  } else {
    c->resume_parsing();
  }
}

void BackendConn::resume_parsing() {
  mode_ = Mode::Parsing;
  llhttp_resume(&parser_);
  std::string data;
  data.swap(backlog_);
  parse(data.data(), data.size());
}

// Sends `reply` and closes: the input cannot be trusted any more.
void BackendConn::fail(std::string reply) {
  out_.append(reply);
  mode_ = Mode::Finishing;
  close_after_write_ = true;
}

// ---- Output ---------------------------------------------------------------

// Hands as much output to the kernel as it takes without blocking
// (uv_try_write), queues the rest as one uv_write, tops up streamed bodies,
// and acts on the connection's state once everything has gone out.
void BackendConn::flush() {
  if (closing_) return;
  while (!writing_) {
    while (stream_left_ > 0 && out_.size() - out_off_ < kHighWater) {
      uint64_t n = append_stream_piece(out_, stream_pos_, stream_left_, stream_chunked_);
      stream_pos_ += n;
      stream_left_ -= n;
    }
    if (out_off_ == out_.size()) break;
    uv_buf_t b = uv_buf_init(out_.data() + out_off_, static_cast<unsigned>(out_.size() - out_off_));
    int n = uv_try_write(stream(), &b, 1);
    if (n < 0 && n != UV_EAGAIN) return close();
    if (n > 0) out_off_ += static_cast<size_t>(n);
    if (out_off_ < out_.size()) {
      write_async();  // the socket buffer is full
      if (closing_) return;
    } else {
      out_.clear();
      out_off_ = 0;
    }
  }

  if (!writing_ && out_.empty()) {
    if (stream_done()) {
      uv_timer_start(&timer_, on_timer, 0, 0);  // not inline: flush() may run inside parse()
    } else if (close_after_write_) {
      return close();
    }
  }
  update_reading();
}

void BackendConn::write_async() {
  wbuf_.swap(out_);
  wbuf_off_ = out_off_;
  out_.clear();
  out_off_ = 0;
  uv_buf_t b =
      uv_buf_init(wbuf_.data() + wbuf_off_, static_cast<unsigned>(wbuf_.size() - wbuf_off_));
  if (uv_write(&write_req_, stream(), &b, 1, on_write) != 0) return close();
  writing_ = true;
}

void BackendConn::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<BackendConn*>(req->handle->data);
  c->writing_ = false;
  c->wbuf_.clear();
  c->wbuf_off_ = 0;
  if (status < 0) return c->close();
  c->flush();
}

// ---- llhttp callbacks -----------------------------------------------------

int BackendConn::on_url(llhttp_t* p, const char* at, size_t n) {
  of(p).req_.url.append(at, n);
  return 0;
}

int BackendConn::on_header_field(llhttp_t* p, const char* at, size_t n) {
  BackendConn& c = of(p);
  if (c.field_done_) c.field_.clear();
  c.field_done_ = false;
  c.field_.append(at, n);
  return 0;
}

int BackendConn::on_header_value(llhttp_t* p, const char* at, size_t n) {
  BackendConn& c = of(p);
  c.field_done_ = true;
  if (strcasecmp(c.field_.c_str(), "Sec-WebSocket-Key") == 0) c.req_.websocket_key.append(at, n);
  return 0;
}

int BackendConn::on_headers_complete(llhttp_t* p) {
  BackendConn& c = of(p);
  c.req_.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  c.req_.http_minor = p->http_minor;
  c.req_.upgrade = p->upgrade != 0;
  c.body_use_ = body_use(c.req_.url);
  if (counted_in_stats(c.req_.url)) {
    c.in_flight_ = true;
    c.owner_.stats().request_started();
  }
  c.pause_ = Pause::HeadDone;
  return HPE_PAUSED;
}

int BackendConn::on_body(llhttp_t* p, const char* at, size_t n) {
  BackendConn& c = of(p);
  if (c.body_use_ == BodyUse::Ignore) return 0;
  c.hasher_.update(std::string_view(at, n));
  if (c.body_use_ == BodyUse::Keep) {
    if (c.req_.body.size() + n > kMaxEchoBody) {
      c.body_too_large_ = true;
      return HPE_USER;
    }
    c.req_.body.append(at, n);
  }
  return 0;
}

int BackendConn::on_message_complete(llhttp_t* p) {
  of(p).pause_ = Pause::MessageDone;
  return HPE_PAUSED;
}

const llhttp_settings_t& BackendConn::parser_settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_url = on_url;
    x.on_header_field = on_header_field;
    x.on_header_value = on_header_value;
    x.on_headers_complete = on_headers_complete;
    x.on_body = on_body;
    x.on_message_complete = on_message_complete;
    return x;
  }();
  return s;
}

}  // namespace sluice::test
