// The test backend: a single-threaded libuv HTTP/1.1 server with the
// endpoints of backend_routes.h. Used by integration tests, as the demo app
// behind sluice, and as the "fast backend" in benchmarks, so the hot path
// avoids per-request allocation and syscalls beyond one read and one write.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <unordered_set>

#include "tests/support/backend_routes.h"

namespace sluice::test {

class BackendConn;

class Backend {
 public:
  Backend(uv_loop_t* loop, uint64_t max_concurrent);
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Binds host:port (port 0: ephemeral) and starts accepting. Returns the
  // bound port, or a negative libuv error code.
  int listen(const std::string& host, uint16_t port);

  // Stops accepting and closes every connection; uv_run() then returns once
  // the close callbacks have run. The Backend must outlive that.
  void shutdown();

  uv_loop_t* loop() const { return loop_; }
  BackendStats& stats() { return stats_; }

  // One read buffer for all connections: the loop is single-threaded and
  // each read is parsed (or copied) before the next one, so idle
  // connections cost no buffer memory.
  char* read_buffer() { return read_buffer_.data(); }
  size_t read_buffer_size() const { return read_buffer_.size(); }

  void add(BackendConn* c) { conns_.insert(c); }
  void remove(BackendConn* c) { conns_.erase(c); }

 private:
  static void on_connection(uv_stream_t* server, int status);

  uv_loop_t* loop_;
  uv_tcp_t server_{};
  bool server_open_ = false;
  std::unordered_set<BackendConn*> conns_;
  std::string read_buffer_;
  BackendStats stats_;
};

}  // namespace sluice::test
