// One client TCP connection and the requests it carries, one at a time in
// arrival order (pipelined requests wait in the input buffer). It owns its
// socket and is freed by its Server only after the poll handle's close
// callback: close() is the one way out, from any state.
//
// The socket is polled with a uv_poll_t and read and written here, not
// through a uv_tcp_t: that is 88 bytes less on every idle connection, and
// reads land straight in the input buffer and writes go out as one sendmsg.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "config/config.h"
#include "core/deadline_timers.h"
#include "proxy/input_buffer.h"
#include "proxy/listener.h"
#include "proxy/metrics.h"
#include "proxy/request_parser.h"
#include "proxy/routing.h"
#include "proxy/spill_buffer.h"
#include "proxy/socket_writer.h"
#include "proxy/upstream_connection.h"
#include "proxy/upstream_link.h"
#include "proxy/upstream_pool.h"

namespace sluice::proxy {

class ClientConnection;
class Server;

// A request's place in its upstream's queue. It lives in the Exchange, not
// the connection, so an idle keep-alive connection carries no queue links
// (48 bytes of each idle connection's memory).
struct QueueEntry final : QueueWaiter {
  ClientConnection* conn = nullptr;
  void on_slot_granted(UpstreamServer* server, uint32_t in_flight, size_t index) override;
  void on_shed(ShedReason reason) override;
};

// What a request hears from its parser, its upstream connection and its
// temp files, passed on to the connection. Like the queue entry it lives in
// the Exchange, so an idle connection carries none of its three vtable
// pointers.
struct ExchangeEvents final : UpstreamUser, RequestSink, SpillOwner {
  ClientConnection* conn = nullptr;
  void on_upstream_ready() override;
  void on_upstream_head(ResponseHead& head) override;
  void on_upstream_body(const char* data, size_t len) override;
  void on_upstream_done() override;
  void on_upstream_error(UpstreamError err) override;
  void on_upstream_drained() override;
  void on_upstream_batch(bool begin) override;
  void on_upstream_tunnel_data(const char* data, size_t len) override;
  bool on_request_body(const char* at, size_t len) override;
  bool on_request_end() override;
  void on_spill_written(SpillBuffer& buffer) override;
  void on_spill_read(SpillBuffer& buffer, const char* data, size_t len) override;
};

// The state of one request and its response. Taken from a free list when a
// request starts and given back when the connection goes idle, so an idle
// keep-alive connection carries none of it, and its buffers keep their
// capacity from request to request: steady state allocates nothing.
struct Exchange {
  RequestParser parser;
  RequestHead head;
  std::string upstream_head;  // built by the worker
  std::string out;            // heads and local responses we write
  // The request body as it goes upstream (chunk framing included), read
  // before the upstream is picked: memory, then a temp file. Replayed on retry.
  SpillBuffer body;
  // Response body bytes beyond buffering.response_memory that the client
  // has not taken yet (buffer_response): a temp file, fed as the client reads.
  SpillBuffer response;
  bool body_replaying = false;      // the file part of `body` is going upstream
  bool response_spilling = false;   // response bytes go to `response` until it drains
  config::ConfigPtr cfg;      // the snapshot this request lives with
  const config::Route* route = nullptr;
  UpstreamLink* link = nullptr;     // this loop's side of the upstream
  UpstreamConnection* upstream = nullptr;
  UpstreamServer* server = nullptr;  // the server whose slot we hold or held
  uint64_t slot_ns = 0;              // uv_hrtime() when the slot was taken
  uint32_t in_flight_at_start = 0;   // the server's in-flight count then
  uint64_t budget_ns = 0;            // the client's own wait budget; 0 = none
  TriedSet tried = 0;
  uint64_t body_bytes = 0;
  uint32_t attempts_left = 0;
  // Progress of the two directions; the connection's state says what runs.
  bool slot_held = false;       // one of pool's in-flight slots is ours
  bool waiting_admitted = false;  // admitted to the queue; no letter delivered yet
  uint8_t requeues = 0;         // times sent back to the queue by a busy app
  bool head_seen = false;       // headers complete
  bool request_done = false;    // message complete
  bool body_flowing = false;    // the parser may consume body bytes now
  bool body_streamed = false;   // body bytes went upstream unbuffered: no replay
  bool expect_continue = false;
  bool response_started = false;
  bool response_done = false;
  bool chunk_response = false;  // we re-frame the response body as chunked
  bool close_after_response = false;
  bool logged = false;          // its access-log line is written
  // For the access log.
  uint16_t status = 0;          // sent to the client; 0 = none yet
  uint64_t sent_body = 0;       // response body bytes sent
  uint64_t started_ns = 0;      // uv_hrtime() at the first byte of the request
  std::string upstream_addr;    // the server used (a copy: a reload may free the server)
  uint64_t queued_ns = 0;       // uv_hrtime() when it joined the upstream's queue
  QueueEntry waiting;           // on the upstream's queue while Queued
  ExchangeEvents events;        // the parser's, upstream's and temp files' listener

  // Ready for a new request; keeps every buffer's capacity.
  void reset();
};

enum class ClientState : uint8_t {
  Idle,         // keep-alive: no byte of the next request yet
  ReadingHead,  // parsing a request head
  Routing,      // the head is on a worker
  ReadingBody,  // buffering the request body before it takes a slot
  Queued,       // every server of the upstream is at its cap
  Connecting,   // a slot is ours; waiting for an upstream connection
  Proxying,     // request and response are streaming
  Tunnel,       // after a 101: raw bytes both ways
  Draining,     // last response written; close once it is flushed
  Closing,
};

class ClientConnection final {
 public:
  // `listener` indexes cfg->listeners: the one that accepted it.
  ClientConnection(Server& server, ConnId id, uint32_t gen, config::ConfigPtr cfg,
                   uint16_t listener);
  ~ClientConnection();

  // Takes over an accepted socket and starts reading. Returns false if it
  // failed (the connection is then closing, or already released).
  bool accept(int fd, const sockaddr_storage& peer);

  void on_routed(RouteResult&& r);

  // Graceful shutdown: an idle connection closes now, a busy one after its
  // current response.
  void drain();
  void close();

  ConnId id() const { return id_; }
  // The address this connection is counted under for max_connections_per_ip.
  const PeerKey* counted_peer() const { return peer_counted_ ? &peer_ : nullptr; }
  uint32_t gen() const { return gen_; }
  ClientState state() const { return state_; }

  // Called by the Server's shared timers when this connection's deadline passes.
  static void on_timeout(DeadlineNode* node);

 private:
  void transition(ClientState next);
  void arm_timer();
  void process_input();
  void start_request_head();
  void head_complete();
  void read_body();
  void start_forward();
  void try_acquire(bool new_request = false);
  void shed(ShedReason reason);
  void leave_queue();
  uint32_t others_in_flight() const;  // off the queue, or its undelivered letter taken back
  uint64_t client_budget_ns() const;
  void use_server(const SlotGrant& grant);
  bool replayable() const;
  void retry_or_fail(UpstreamError err);
  void finish_exchange();
  void next_request();
  void send_local(int status, std::string_view body, const config::HeaderList* headers = nullptr,
                  bool close_after = false, uint32_t retry_after = 0);
  void reject(int status);  // an error of the client's: answer and close
  void write(std::string_view bytes);
  void write(const uv_buf_t* bufs, unsigned n);
  // Like write(), but held (copied into x_->out) while corked_, so that a
  // response head, its body and its end leave in one system call.
  void emit(const uv_buf_t* bufs, unsigned n);
  void uncork();
  void record_request();  // metrics and the access-log line, once per request
  UpstreamMetrics& upstream_metrics();
  void release_slot(Outcome outcome = Outcome::Neutral);
  bool requeue_if_busy(Outcome outcome);
  void drop_upstream();
  bool want_keep_alive() const;
  void update_read_state();
  void take_exchange();
  void release_exchange();

  // From x_->events (ExchangeEvents): the upstream connection...
  friend struct ExchangeEvents;
  void on_upstream_ready();
  void on_upstream_head(ResponseHead& head);
  void on_upstream_body(const char* data, size_t len);
  void on_upstream_done();
  void on_upstream_error(UpstreamError err);
  void on_upstream_drained();
  void on_upstream_batch(bool begin);
  void on_upstream_tunnel_data(const char* data, size_t len);
  // ...the parser: what becomes of the request body...
  bool on_request_body(const char* at, size_t len);
  bool on_request_end();
  // ...and buffered bodies' temp files.
  void on_spill_written(SpillBuffer& buffer);
  void on_spill_read(SpillBuffer& buffer, const char* data, size_t len);
  // From x_->waiting (QueueEntry).
  friend struct QueueEntry;
  void on_slot_granted(const SlotGrant& grant);
  void on_shed(ShedReason reason);
  void send_body_file();      // the next piece of a spilled request body goes upstream
  void body_spill_failed();
  bool spill_response();      // later response bytes go to the file; false if none is allowed
  bool response_spill_full() const;
  void feed_response();       // spilled response bytes go to the client as it drains
  void finish_response();     // the end of the response, after every body byte

  // The socket.
  void update_poll();     // polls for what reading_ and the write queue want
  void read_socket();     // reads while the socket has bytes and we want them
  void on_read(ssize_t nread);  // bytes read (> 0), UV_EOF or an error
  void flush_output();    // writable: sends queued bytes
  void after_write();     // queued bytes left: resume what waited for that
  static void on_poll(uv_poll_t* h, int status, int events);
  static void on_closed(uv_handle_t* h);

  Server& server_;
  const ConnId id_;
  const uint32_t gen_;
  config::ConfigPtr conn_cfg_;          // the snapshot at accept: listener settings
  const config::Listener& listener() const { return conn_cfg_->listeners[listener_index_]; }

  uv_poll_t poll_{};
  DeadlineNode timer_;
  int fd_ = -1;
  ClientState state_ = ClientState::Idle;
  uint8_t poll_events_ = 0;  // UV_READABLE | UV_WRITABLE as polled now
  bool reading_ = false;
  bool draining_ = false;   // server shutdown: no keep-alive after this response
  bool peer_eof_ = false;   // the client shut down its side
  bool corked_ = false;     // inside an upstream read batch: emit() holds writes
  // The client's address, as 16 bytes rather than text: every idle
  // connection has one. Formatted into each request's head.
  bool peer_known_ = false;
  bool peer_v6_ = false;
  bool peer_counted_ = false;  // in the listener's per-address count
  uint16_t listener_index_;    // in conn_cfg_->listeners
  PeerKey peer_;

  InputBuffer in_;
  SocketWriter writer_;

  Exchange* x_ = nullptr;  // the current request; null while idle
};

}  // namespace sluice::proxy
