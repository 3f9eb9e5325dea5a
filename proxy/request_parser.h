// The client side's HTTP/1.1 request parser: llhttp in strict mode plus
// the checks llhttp does not make, filling a RequestHead. It holds no
// socket, so the same code runs in the proxy, the unit tests and the fuzz
// target. What happens to body bytes is the sink's business.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"
#include "proxy/request_head.h"

namespace sluice::proxy {

// Receives what follows the head. Called from inside RequestParser::execute.
class RequestSink {
 public:
  // Body bytes with any chunk framing removed; false fails the request.
  virtual bool on_request_body(const char* at, size_t len) = 0;
  // The whole request has been read (chunked: the last chunk and trailers);
  // false fails the request.
  virtual bool on_request_end() = 0;

 protected:
  ~RequestSink() = default;
};

// What one execute() call did.
struct ParseStep {
  size_t used = 0;             // bytes consumed; the rest waits for a later call
  int reject = 0;              // non-zero: the request fails with this status
  const char* error = nullptr; // llhttp's reason when it found the input malformed
};

class RequestParser {
 public:
  RequestParser() = default;
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Starts a request at a message boundary: a fresh llhttp, `head` (cleared
  // by the caller) filled from here on. Both must outlive the request.
  void start(RequestHead& head, RequestSink& sink, const config::ListenerLimits& limits);

  // Parses from `data`. It stops after the head of a request with a body
  // (call resume() once the body may flow), and after the end of a request.
  ParseStep execute(std::string_view data);
  void resume() { llhttp_resume(&parser_); }

  bool head_done() const { return head_done_; }
  bool message_done() const { return message_done_; }
  // The client sent "Expect: 100-continue" with a body.
  bool expect_continue() const { return expect_continue_; }
  uint64_t head_bytes() const { return head_bytes_; }

 private:
  bool has_obs_fold(std::string_view bytes);
  int on_trailer_bytes(size_t len, bool value);

  static const llhttp_settings_t& settings();
  static int on_method(llhttp_t* p, const char* at, size_t len);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);

  llhttp_t parser_{};
  RequestHead* head_ = nullptr;
  RequestSink* sink_ = nullptr;
  config::ListenerLimits limits_;
  uint64_t head_bytes_ = 0;   // bytes consumed before the head was complete
  uint64_t body_bytes_ = 0;   // decoded body bytes so far
  uint64_t trailer_bytes_ = 0;  // chunked trailer fields: checked, counted, dropped
  int reject_ = 0;            // set by a callback to fail the request
  bool in_value_ = false;     // the last head piece was a header value
  bool trailer_name_ = false; // the current trailer field has a name so far
  bool trailer_value_ = true; // the last trailer piece was a value (or none yet)
  bool after_lf_ = false;     // the last head byte was LF (obs-fold check)
  bool head_done_ = false;
  bool message_done_ = false;
  bool expect_continue_ = false;
};

// The status a parser error earns.
int status_for(llhttp_errno_t err);

}  // namespace sluice::proxy
