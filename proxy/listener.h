// A listening socket. Accepted connections are handed to the Server; past
// max_connections they are accepted and closed at once, so the kernel's
// backlog never fills with connections nobody will serve. At EMFILE libuv
// itself closes a reserve descriptor, accepts and drops the connection,
// and re-opens the reserve, so the loop never spins on a ready listener.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice::proxy {

class Listener {
 public:
  // Called for each pending connection; must uv_accept() it (or close it).
  using AcceptFn = std::function<void(Listener& self, uv_stream_t* server)>;

  static Result<std::unique_ptr<Listener>> bind(uv_loop_t* loop, const config::Listener& cfg,
                                                AcceptFn on_accept);

  const std::string& name() const { return name_; }
  // The address actually bound (port 0 resolved), e.g. "127.0.0.1:43817".
  const std::string& bound() const { return bound_; }
  const config::SocketAddress& address() const { return address_; }

  // Stops accepting; established connections are not touched.
  void close() { tcp_.close(); }

  // Reload: the same socket under new settings.
  void reconfigure(const config::Listener& cfg) {
    name_ = cfg.name;
    max_connections = cfg.max_connections;
  }

  uint32_t active = 0;        // connections accepted and not yet closed
  uint32_t max_connections = 0;

 private:
  Listener() = default;
  static void on_connection(uv_stream_t* server, int status);

  UvHandle<uv_tcp_t> tcp_;
  AcceptFn on_accept_;
  std::string name_;
  std::string bound_;
  config::SocketAddress address_;
};

// "127.0.0.1:8080" or "[::1]:8080" for a bound or peer address.
std::string socket_name(const sockaddr_storage& ss);

// Accepts one pending connection and closes it: the answer past a limit.
void accept_and_drop(uv_stream_t* server);

}  // namespace sluice::proxy
