// The admin listener (off unless `admin.listen` is set): GET /metrics in
// the Prometheus text format and GET /status as JSON. Served on the first
// loop; each answer is built from copies of every loop's counters (taken
// on each loop's own thread) and of each upstream pool's state (taken
// under its lock), and the connection closes after one response.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice::proxy {

class Server;
struct LoopStats;

class AdminServer {
 public:
  static Result<std::unique_ptr<AdminServer>> start(uv_loop_t* loop,
                                                    const config::SocketAddress& address,
                                                    Server& server);
  ~AdminServer();
  const std::string& bound() const { return bound_; }
  void close() { tcp_.close(); }

  // Every loop's counters, added up; `done` runs on this loop.
  void collect(std::function<void(const LoopStats&)> done);
  // The bodies, from `all` (collect()), or from this loop's own counters.
  std::string render_metrics(const LoopStats& all) const;
  std::string render_status(const LoopStats& all) const;
  std::string render_metrics() const;
  std::string render_status() const;

 private:
  explicit AdminServer(Server& server) : server_(server) {}
  static void on_connection(uv_stream_t* s, int status);

  Server& server_;
  UvHandle<uv_tcp_t> tcp_;
  std::string bound_;
};

}  // namespace sluice::proxy
