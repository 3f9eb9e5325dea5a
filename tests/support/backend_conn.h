// One client connection of the test backend: reads and parses requests with
// llhttp, answers them in order through backend_routes.h, and carries out
// replies that outlive the request (delays, streamed bodies, upgrades,
// hangs, resets). Loop thread only.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <string>

#include "tests/support/backend_routes.h"
#include "tests/support/hash.h"

namespace sluice::test {

class Backend;

class BackendConn {
 public:
  // Accepts one pending connection from `server`. The connection frees
  // itself when closed and unregisters from `owner`.
  static void accept(Backend& owner, uv_stream_t* server);

  // Idempotent; the object is deleted once both handles have closed.
  void close();

 private:
  // What the connection is doing; decides what happens to input.
  enum class Mode : uint8_t {
    Parsing,    // reading requests
    Sleeping,   // a reply waits for timer_; input is kept in backlog_
    Streaming,  // a reply body is being generated; input is kept in backlog_
    Echoing,    // after a 101: every byte read is written back
    Hanging,    // a reply stopped mid-way; input is dropped until the peer closes
    Finishing,  // closing once the output is written; input is dropped
  };
  // Why llhttp paused; set by the callback that returned HPE_PAUSED.
  enum class Pause : uint8_t { HeadDone, MessageDone };

  explicit BackendConn(Backend& owner);
  ~BackendConn() = default;

  // Input.
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  void on_eof();
  void parse(const char* data, size_t len);
  void dispatch(const char* rest, const char* end);
  void reset_request();
  void resume_parsing();
  void update_reading();
  void fail(std::string reply);

  // Output.
  void flush();
  static void on_write(uv_write_t* req, int status);
  bool stream_done() const { return mode_ == Mode::Streaming && stream_left_ == 0; }
  size_t pending_output() const { return out_.size() - out_off_ + wbuf_.size() - wbuf_off_; }
  void write_async();

  static void on_timer(uv_timer_t* t);
  static void on_closed(uv_handle_t* h);
  void finish_request();
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  // llhttp callbacks.
  static BackendConn& of(llhttp_t* p) { return *static_cast<BackendConn*>(p->data); }
  static int on_url(llhttp_t* p, const char* at, size_t n);
  static int on_header_field(llhttp_t* p, const char* at, size_t n);
  static int on_header_value(llhttp_t* p, const char* at, size_t n);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t n);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& parser_settings();

  Backend& owner_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  int open_handles_ = 0;
  bool closing_ = false;
  bool reading_ = false;
  bool peer_eof_ = false;
  Mode mode_ = Mode::Parsing;

  // Request being parsed.
  llhttp_t parser_{};
  Pause pause_ = Pause::HeadDone;
  Request req_;
  BodyUse body_use_ = BodyUse::Ignore;
  BodyHasher hasher_;
  bool body_too_large_ = false;
  std::string field_;                // current header name (may arrive in pieces)
  bool field_done_ = false;          // field_ is complete; values follow
  bool in_head_ = true;              // bytes being parsed belong to a request head
  const char* head_from_ = nullptr;  // start of unsaved head bytes in the current input
  bool in_flight_ = false;           // a request counted in stats has not finished
  std::string backlog_;              // input read while a reply was deferred

  // Reply being carried out.
  std::string deferred_;            // Sleeping: the bytes to send when timer_ fires
  bool close_after_reply_ = false;  // Sleeping/Streaming: close once the reply is out
  uint64_t stream_pos_ = 0;         // Streaming: pattern bytes generated so far
  uint64_t stream_left_ = 0;
  bool stream_chunked_ = false;
  bool close_after_write_ = false;
  bool reset_on_close_ = false;

  // Output: out_ from out_off_ is not yet handed to the kernel; wbuf_ is
  // owned by the uv_write in flight, if any.
  std::string out_;
  size_t out_off_ = 0;
  std::string wbuf_;
  size_t wbuf_off_ = 0;
  uv_write_t write_req_{};
  bool writing_ = false;
};

}  // namespace sluice::test
