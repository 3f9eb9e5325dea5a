// One TCP connection to one upstream server. It owns its socket, its timer
// and its response parser, and frees itself after both handles' close
// callbacks (its single close path). While a request uses it, its user (a
// client connection) gets the events below; while idle it sits in its
// link's keep-alive list, where any byte or EOF from the server closes it,
// so a connection the server has closed is never handed to a request.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>

#include "config/config.h"
#include "core/deadline_timers.h"
#include "proxy/input_buffer.h"
#include "proxy/response_head.h"
#include "proxy/response_parser.h"
#include "proxy/stream_writer.h"

namespace sluice::proxy {

class UpstreamLink;
class UpstreamServer;

enum class UpstreamError : uint8_t {
  ConnectFailed,    // refused, unreachable: nothing was sent
  ConnectTimeout,   // nothing was sent
  ClosedEarly,      // closed or reset before any response byte
  BadResponse,      // not HTTP, or a head over the size limit
  ResponseTimeout,  // no byte within timeouts.response
  Truncated,        // closed or reset in the middle of the response
};

const char* to_string(UpstreamError e);

// Loop thread only. A user must detach (UpstreamConnection::abort or a
// completed response) before it goes away.
class UpstreamUser {
 public:
  virtual void on_upstream_ready() = 0;  // connected: write the request
  virtual void on_upstream_head(ResponseHead& head) = 0;
  virtual void on_upstream_body(const char* data, size_t len) = 0;
  // The response is complete; the connection has gone back to its pool or
  // been closed, and no further event comes.
  virtual void on_upstream_done() = 0;
  // The connection failed and is closing; no further event comes.
  virtual void on_upstream_error(UpstreamError err) = 0;
  virtual void on_upstream_drained() = 0;
  // Brackets the events of one read from the server (begin = true, then
  // false), so the user can send what they produce in one write. A batch
  // that ends in done or error gets no closing call.
  virtual void on_upstream_batch(bool begin) = 0;  // write queue fell below the low mark
  virtual void on_upstream_tunnel_data(const char* data, size_t len) = 0;

 protected:
  ~UpstreamUser() = default;
};

class UpstreamConnection final : private ResponseSink {
 public:
  enum class State : uint8_t { Connecting, Active, Tunnel, Idle, Closing };

  // Starts a non-blocking connect; the user hears on_upstream_ready or
  // on_upstream_error. Returns nullptr (and the user hears nothing) only
  // when the socket could not even be created.
  static UpstreamConnection* connect(UpstreamLink* link, UpstreamServer* server,
                                     UpstreamUser* user);

  // Called by the pool's timers when this connection's deadline passes.
  static void on_timeout(DeadlineNode* node);

  // Hands an idle pooled connection to a request.
  void attach(UpstreamUser* user);

  // Request side. `head_request`: the response has no body whatever it says.
  // `upgrade`: the request asks to switch protocols, so a 101 may answer it.
  void begin_request(bool head_request, bool upgrade);
  int send(const uv_buf_t* bufs, unsigned n);
  int send(std::string_view bytes);
  void request_sent();  // every byte of the request has been handed to send()
  size_t write_queued() const { return writer_.queued(); }
  bool got_response_bytes() const { return response_bytes_ > 0; }
  bool reused() const { return requests_ > 1; }

  // Flow control from the client side.
  void pause_reading();
  void resume_reading();

  // Closes at once without telling the user (the user is going away).
  void abort();

  UpstreamServer* server() const { return server_; }
  State state() const { return state_; }

 private:
  UpstreamConnection(UpstreamLink* link, UpstreamServer* server, UpstreamUser* user);
  ~UpstreamConnection() = default;

  void close();  // the one close path
  void fail(UpstreamError err);
  void finish_response();
  void arm_timer(config::Duration d);
  void on_data(const char* data, size_t len);
  void parse(const char* data, size_t len);
  void start_tunnel();  // after a 101: raw bytes both ways

  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);

  static void on_closed(uv_handle_t* h);
  static void on_written(void* self, int status);

  // ResponseSink: hands the response to the user.
  bool on_response_head(ResponseHead& head) override;
  bool on_response_body(const char* at, size_t len) override;

  uv_tcp_t tcp_{};
  DeadlineNode timer_;  // on link_->timers()
  uv_connect_t connect_req_{};

  UpstreamLink* link_;
  UpstreamServer* server_;
  UpstreamUser* user_;
  State state_ = State::Connecting;

  ResponseParser parser_;
  bool request_sent_ = false;
  bool reading_paused_ = false;
  bool busy_ = false;  // carrying a request: counted by the link
  uint64_t response_bytes_ = 0;
  uint64_t requests_ = 0;

  InputBuffer in_;
  StreamWriter writer_;
};

}  // namespace sluice::proxy
