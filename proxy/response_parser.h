// The upstream side's HTTP/1.1 response parser: llhttp (strict) filling a
// ResponseHead, skipping interim 1xx responses, and deciding how the body
// is framed. It holds no socket, so the same code runs in the upstream
// connection, the unit tests and the fuzz target.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string_view>

#include "proxy/response_head.h"

namespace sluice::proxy {

// Receives the final response. Called from inside ResponseParser::execute.
class ResponseSink {
 public:
  // The head of the final response (never an interim 1xx other than 101).
  // False: stop parsing (the receiver is going away).
  virtual bool on_response_head(ResponseHead& head) = 0;
  // Body bytes with any chunk framing removed; false: stop parsing.
  virtual bool on_response_body(const char* at, size_t len) = 0;

 protected:
  ~ResponseSink() = default;
};

enum class ResponseProgress : uint8_t {
  More,     // every byte used; the response is not complete yet
  Done,     // the response is complete; bytes after it were not used
  Upgrade,  // a 101 head: the bytes after `used` belong to the tunnel
  Stopped,  // a sink call returned false
  Invalid,  // not a valid response (or a head over kMaxHead)
};

struct ResponseStep {
  size_t used = 0;
  ResponseProgress progress = ResponseProgress::More;
  const char* error = nullptr;  // why, when Invalid
};

class ResponseParser {
 public:
  // A response head larger than this is not one a sane app sends.
  static constexpr size_t kMaxHead = 64 * 1024;

  ResponseParser() = default;
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Ready for the response to a new request. `head_request`: the response
  // has no body whatever its head says. `upgrade`: the request asked to
  // switch protocols (and was forwarded so); otherwise a 101 is invalid.
  void start(ResponseSink& sink, bool head_request, bool upgrade);

  ResponseStep execute(std::string_view data);
  // The server closed: true when that ends a close-delimited body, i.e.
  // the response is now complete.
  bool finish_at_eof();

  bool head_done() const { return head_done_; }
  bool done() const { return done_; }
  const ResponseHead& head() const { return head_; }

 private:
  static const llhttp_settings_t& settings();
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);

  llhttp_t parser_{};
  ResponseHead head_;
  ResponseSink* sink_ = nullptr;
  bool head_request_ = false;
  bool upgrade_ = false;
  bool in_value_ = false;
  bool head_done_ = false;
  bool done_ = false;
  bool stopped_ = false;  // a sink call returned false
  const char* error_ = nullptr;  // our reason for refusing, over llhttp's
};

}  // namespace sluice::proxy
