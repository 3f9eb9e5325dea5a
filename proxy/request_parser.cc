#include "proxy/request_parser.h"

#include "proxy/http_util.h"

namespace sluice::proxy {

namespace {

RequestParser* self_of(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }

void append_span(std::string& buf, Span& span, const char* at, size_t len) {
  if (span.len == 0) span.off = static_cast<uint32_t>(buf.size());
  buf.append(at, len);
  span.len += static_cast<uint32_t>(len);
}

// What llhttp lets through about Transfer-Encoding but sluice must not:
// 400 for an empty value (llhttp then reads no body and takes the body for
// the next request) and for HTTP/1.0 (RFC 9112 §6.1: faulty framing); 501
// for a coding besides chunked (sluice forwards only chunked, so it would
// silently drop it). 0 when the head may go on.
int transfer_coding_status(const llhttp_t* p, const RequestHead& h) {
  bool present = false;
  bool other_coding = false;
  for (const auto& f : h.headers) {
    if (!iequals(h.view(f.name), "transfer-encoding")) continue;
    present = true;
    for_each_list_token(h.view(f.value), [&](std::string_view coding) {
      if (!iequals(coding, "chunked")) other_coding = true;
    });
  }
  if (!present) return 0;
  if (p->http_minor == 0 || (p->flags & F_TRANSFER_ENCODING) == 0) return 400;
  // Without chunked last llhttp fails the request itself (a 400).
  if ((p->flags & F_CHUNKED) != 0 && other_coding) return 501;
  return 0;
}

}  // namespace

// 400 for malformed input, 505 for an HTTP version we do not speak. llhttp's
// invalid Transfer-Encoding is chunked missing or not last, or twice: RFC
// 9112 §6.3 makes that a 400 (the length cannot be known), not a 501.
int status_for(llhttp_errno_t err) {
  switch (err) {
    case HPE_INVALID_METHOD: return 400;
    case HPE_INVALID_VERSION: return 505;
    case HPE_INVALID_TRANSFER_ENCODING: return 400;
    default: return 400;
  }
}

// One table for every parser: llhttp only reads it.
const llhttp_settings_t& RequestParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_method = &RequestParser::on_method;
    t.on_url = &RequestParser::on_url;
    t.on_header_field = &RequestParser::on_header_field;
    t.on_header_field_complete = &RequestParser::on_header_field_complete;
    t.on_header_value = &RequestParser::on_header_value;
    t.on_headers_complete = &RequestParser::on_headers_complete;
    t.on_body = &RequestParser::on_body;
    t.on_message_complete = &RequestParser::on_message_complete;
    return t;
  }();
  return s;
}

void RequestParser::start(RequestHead& head, RequestSink& sink,
                          const config::ListenerLimits& limits) {
  // Strict mode: no lenient flag is ever set.
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
  head_ = &head;
  sink_ = &sink;
  limits_ = limits;
  head_bytes_ = body_bytes_ = trailer_bytes_ = 0;
  reject_ = 0;
  in_value_ = after_lf_ = head_done_ = message_done_ = expect_continue_ = false;
  trailer_name_ = false;
  trailer_value_ = true;
}

ParseStep RequestParser::execute(std::string_view data) {
  ParseStep step;
  const bool in_head = !head_done_;
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  step.used = data.size();
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    step.used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
  }
  if (in_head) {
    head_bytes_ += step.used;
    if (has_obs_fold(data.substr(0, step.used))) reject_ = 400;
  }
  if (reject_ != 0) {
    step.reject = reject_;
    reject_ = 0;
    return step;
  }
  if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
    step.reject = status_for(err);
    // "HTTP/1.1 " (a space after the version): the version is one we
    // speak, the request line is what is wrong.
    if (err == HPE_INVALID_VERSION && parser_.http_major == 1 && parser_.http_minor <= 1) {
      step.reject = 400;
    }
    step.error = llhttp_get_error_reason(&parser_);
    return step;
  }
  // The head counts whole, CRLFs included, not only what the callbacks saw.
  if (in_head && head_bytes_ > limits_.max_header_bytes) step.reject = 431;
  return step;
}

// llhttp 8 accepts obs-fold (a header line continued with SP or HTAB) even
// in strict mode. RFC 9112 §5.2 lets a proxy reject it, and a proxy that
// unfolds where the app would not is a smuggling vector: reject.
bool RequestParser::has_obs_fold(std::string_view bytes) {
  for (char c : bytes) {
    if (after_lf_ && (c == ' ' || c == '\t')) return true;
    after_lf_ = c == '\n';
  }
  return false;
}

// --- llhttp callbacks -------------------------------------------------------------

int RequestParser::on_method(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append_span(self->head_->buf, self->head_->method, at, len);
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append_span(self->head_->buf, self->head_->target, at, len);
  if (self->head_->buf.size() > self->limits_.max_header_bytes) {
    self->reject_ = 414;
    return -1;
  }
  return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  // llhttp 8 lets a space before the colon into the name. RFC 9112 §5.1:
  // a server MUST reject it (it is a classic smuggling vector).
  for (size_t i = 0; i < len; ++i) {
    if (!is_tchar(at[i])) {
      self->reject_ = 400;
      return -1;
    }
  }
  if (self->head_done_) return self->on_trailer_bytes(len, /*value=*/false);
  auto& h = *self->head_;
  if (self->in_value_ || h.headers.empty()) {
    h.headers.emplace_back();
    self->in_value_ = false;
  }
  append_span(h.buf, h.headers.back().name, at, len);
  if (h.buf.size() > self->limits_.max_header_bytes) {
    self->reject_ = 431;
    return -1;
  }
  return 0;
}

// llhttp 8 also takes a line starting with ':' as a header with an empty
// name (found by tests/fuzz/request_fuzz); a field name is a token, one
// character at least (RFC 9110 §5.1), and forwarding ": x" leaves the app
// to guess what it means.
int RequestParser::on_header_field_complete(llhttp_t* p) {
  auto* self = self_of(p);
  const auto& h = *self->head_;
  const bool empty = self->head_done_ ? !self->trailer_name_
                                     : self->in_value_ || h.headers.empty() || h.headers.back().name.len == 0;
  if (empty) {
    self->reject_ = 400;
    return -1;
  }
  return 0;
}

// llhttp hands chunked trailer fields to the header callbacks, after the
// head has been routed and forwarded. They are not forwarded (the upstream
// head announced none), so they are not kept either: appended to the head
// they showed up as request headers in the access log, and counted with it
// they earned a 431 by a rule no one wrote (found by tests/fuzz/request_fuzz).
// They still count against max_header_bytes, so they cannot grow unbounded.
int RequestParser::on_trailer_bytes(size_t len, bool value) {
  if (!value && trailer_value_) trailer_name_ = false;  // a new field begins
  if (!value && len > 0) trailer_name_ = true;
  trailer_value_ = value;
  trailer_bytes_ += len;
  if (trailer_bytes_ > limits_.max_header_bytes) {
    reject_ = 431;
    return -1;
  }
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  if (self->head_done_) return self->on_trailer_bytes(len, /*value=*/true);
  auto& h = *self->head_;
  if (h.headers.empty()) return -1;
  self->in_value_ = true;
  append_span(h.buf, h.headers.back().value, at, len);
  if (h.buf.size() > self->limits_.max_header_bytes) {
    self->reject_ = 431;
    return -1;
  }
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  auto* self = self_of(p);
  auto& h = *self->head_;
  if (h.buf.size() > self->limits_.max_header_bytes) {
    self->reject_ = 431;
    return -1;
  }
  if (p->method == HTTP_CONNECT) {
    self->reject_ = 405;  // a reverse proxy opens no tunnels on request
    return -1;
  }
  // llhttp takes "GET /" for HTTP/0.9 and lets "HTTP/2.0" through; sluice
  // speaks HTTP/1.x only (RFC 9112 §2.3).
  if (p->http_major != 1) {
    self->reject_ = p->http_major == 0 ? 400 : 505;
    return -1;
  }
  if (int status = transfer_coding_status(p, h); status != 0) {
    self->reject_ = status;
    return -1;
  }
  h.http_major = p->http_major;
  h.http_minor = p->http_minor;
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.upgrade = p->upgrade != 0;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  h.content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  h.has_body = h.chunked || h.content_length > 0;
  if (!h.chunked && h.content_length > self->limits_.max_body_bytes) {
    self->reject_ = 413;
    return -1;
  }
  self->expect_continue_ = h.has_body && iequals(h.header("expect"), "100-continue");
  self->head_done_ = true;
  // With a body, stop here until an upstream is ready to take it; without
  // one, run on to message-complete (which pauses) so the request is whole.
  return h.has_body ? HPE_PAUSED : 0;
}

int RequestParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  self->body_bytes_ += len;
  // Content-Length was checked with the head; this catches chunked bodies.
  if (self->body_bytes_ > self->limits_.max_body_bytes) {
    self->reject_ = 413;
    return -1;
  }
  return self->sink_->on_request_body(at, len) ? 0 : -1;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  auto* self = self_of(p);
  self->message_done_ = true;
  if (!self->sink_->on_request_end()) return -1;
  // Upgrade requests end the HTTP stream; llhttp returns PAUSED_UPGRADE.
  return self->head_->upgrade ? 0 : HPE_PAUSED;
}

}  // namespace sluice::proxy
