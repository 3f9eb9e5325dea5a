#include "tests/support/backend.h"

#include <vector>

#include "tests/support/backend_conn.h"

namespace sluice::test {

Backend::Backend(uv_loop_t* loop, uint64_t max_concurrent)
    : loop_(loop), read_buffer_(64 * 1024, '\0') {
  stats_.max_concurrent = max_concurrent;
}

int Backend::listen(const std::string& host, uint16_t port) {
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) rc = uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc != 0) return rc;

  uv_tcp_init(loop_, &server_);
  server_.data = this;
  server_open_ = true;
  rc = uv_tcp_bind(&server_, reinterpret_cast<const sockaddr*>(&addr), 0);
  // A deep backlog: benchmarks open thousands of connections at once.
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 4096, on_connection);
  if (rc != 0) return rc;

  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&bound), &len);
  return bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void Backend::on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;  // e.g. EMFILE; the listener stays up
  BackendConn::accept(*static_cast<Backend*>(server->data), server);
}

void Backend::shutdown() {
  if (server_open_) uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  server_open_ = false;
  // close() unregisters lazily (from a close callback), but copy anyway so
  // the set is never iterated while it could change.
  std::vector<BackendConn*> conns(conns_.begin(), conns_.end());
  for (BackendConn* c : conns) c->close();
}

}  // namespace sluice::test
