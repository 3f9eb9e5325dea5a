#include "proxy/response_parser.h"

#include "proxy/http_util.h"

namespace sluice::proxy {

namespace {

ResponseParser* self_of(llhttp_t* p) { return static_cast<ResponseParser*>(p->data); }

void append(std::string& buf, Span& span, const char* at, size_t len) {
  if (span.len == 0) span.off = static_cast<uint32_t>(buf.size());
  buf.append(at, len);
  span.len += static_cast<uint32_t>(len);
}

}  // namespace

// One table for every parser: llhttp only reads it.
const llhttp_settings_t& ResponseParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_status = &ResponseParser::on_status;
    t.on_header_field = &ResponseParser::on_header_field;
    t.on_header_field_complete = &ResponseParser::on_header_field_complete;
    t.on_header_value = &ResponseParser::on_header_value;
    t.on_headers_complete = &ResponseParser::on_headers_complete;
    t.on_body = &ResponseParser::on_body;
    t.on_message_complete = &ResponseParser::on_message_complete;
    return t;
  }();
  return s;
}

void ResponseParser::start(ResponseSink& sink, bool head_request, bool upgrade) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
  sink_ = &sink;
  head_request_ = head_request;
  upgrade_ = upgrade;
  head_.clear();
  in_value_ = head_done_ = done_ = stopped_ = false;
  error_ = nullptr;
}

ResponseStep ResponseParser::execute(std::string_view data) {
  ResponseStep step;
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  step.used = data.size();
  if (err == HPE_PAUSED_UPGRADE || err == HPE_PAUSED) {
    step.used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    step.progress = err == HPE_PAUSED ? ResponseProgress::Done : ResponseProgress::Upgrade;
    return step;
  }
  if (stopped_) {
    step.progress = ResponseProgress::Stopped;
    return step;
  }
  if (err != HPE_OK) {
    step.progress = ResponseProgress::Invalid;
    step.error = error_ != nullptr ? error_ : llhttp_get_error_reason(&parser_);
    return step;
  }
  if (!head_done_ && head_.buf.size() > kMaxHead) {
    step.progress = ResponseProgress::Invalid;
    step.error = "response head too large";
  }
  return step;
}

bool ResponseParser::finish_at_eof() {
  if (!head_done_ || done_ || llhttp_message_needs_eof(&parser_) == 0) return false;
  llhttp_errno_t rc = llhttp_finish(&parser_);
  return (rc == HPE_OK || rc == HPE_PAUSED) && done_;
}

// --- llhttp callbacks -------------------------------------------------------------

int ResponseParser::on_status(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  append(self->head_.buf, self->head_.reason, at, len);
  return 0;
}

int ResponseParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  // llhttp 8 lets spaces and other non-token bytes into a response's field
  // names (found by tests/fuzz/response_fuzz: "Transfe c%-Encoding"). Passed
  // on, a client may read a name other than the one sluice judged.
  for (size_t i = 0; i < len; ++i) {
    if (!is_tchar(at[i])) {
      self->error_ = "invalid header name";
      return -1;
    }
  }
  auto& h = self->head_;
  if (self->in_value_ || h.headers.empty()) {
    h.headers.emplace_back();
    self->in_value_ = false;
  }
  append(h.buf, h.headers.back().name, at, len);
  return 0;
}

// llhttp 8 takes a line starting with ':' as a header with an empty name;
// passed on, the client would have to guess what ": x" means.
int ResponseParser::on_header_field_complete(llhttp_t* p) {
  auto* self = self_of(p);
  const auto& h = self->head_;
  if (self->in_value_ || h.headers.empty() || h.headers.back().name.len == 0) {
    self->error_ = "empty header name";
    return -1;
  }
  return 0;
}

int ResponseParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  self->in_value_ = true;
  append(self->head_.buf, self->head_.headers.back().value, at, len);
  return 0;
}

int ResponseParser::on_headers_complete(llhttp_t* p) {
  auto* self = self_of(p);
  auto& h = self->head_;
  // execute() checks the size between reads; a head that arrives whole in
  // one large read is checked here.
  if (h.buf.size() > kMaxHead) {
    self->error_ = "response head too large";
    return -1;
  }
  h.status = static_cast<uint16_t>(p->status_code);
  if (h.status < 100 || h.status > 599) {
    // llhttp 8 reads "20" or "999" as a status (found by
    // tests/fuzz/response_fuzz). RFC 9110 §15: values outside 100..599 are
    // invalid, to be taken as a server error: the client gets a 502.
    self->error_ = "invalid status code";
    return -1;
  }
  if (h.status >= 100 && h.status < 200 && h.status != 101) {
    // Interim responses (100, 103) are not forwarded: sluice answers the
    // client's 100-continue itself. Parse on to the final response.
    h.clear();
    self->in_value_ = false;
    // A 1xx ends with its head (RFC 9110 §15.2), whatever Content-Length it
    // claims; llhttp 8 would read that much as a body, which reached the
    // client ahead of any head (found by tests/fuzz/response_fuzz).
    return 1;
  }
  if (h.status == 101 && !self->upgrade_) {
    // RFC 9110 §15.2.2: a server must not switch to a protocol the request
    // did not ask for. Relayed, it would turn the client's connection into
    // a raw tunnel to the app (found by tests/fuzz/response_fuzz).
    self->error_ = "101 to a request that asked for no upgrade";
    return -1;
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
  if (!self->sink_->on_response_head(h)) {
    self->stopped_ = true;
    return -1;
  }
  if (h.status == 101) return 2;  // no body; execute returns HPE_PAUSED_UPGRADE
  // Tell llhttp too: given a Transfer-Encoding other than chunked, llhttp 8
  // reads a 204's or 304's "body" until the server closes, and those bytes
  // followed the bodiless head to the client (found by tests/fuzz/response_fuzz).
  return no_body ? 1 : 0;
}

int ResponseParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = self_of(p);
  if (!self->sink_->on_response_body(at, len)) {
    self->stopped_ = true;
    return -1;
  }
  return 0;
}

int ResponseParser::on_message_complete(llhttp_t* p) {
  auto* self = self_of(p);
  if (!self->head_done_) return 0;           // an interim response ended
  if (self->head_.status == 101) return 0;  // the tunnel starts; nothing ends
  self->done_ = true;
  return HPE_PAUSED;
}

}  // namespace sluice::proxy
