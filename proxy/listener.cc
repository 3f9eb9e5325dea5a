#include "proxy/listener.h"

#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace {
constexpr int kBacklog = 1024;
}  // namespace

std::string socket_name(const sockaddr_storage& ss) {
  char ip[64] = "";
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  uv_ip4_name(a, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
}

Result<std::unique_ptr<Listener>> Listener::bind(uv_loop_t* loop, const config::Listener& cfg,
                                                 AcceptFn on_accept) {
  std::unique_ptr<Listener> l(new Listener());
  l->name_ = cfg.name;
  l->address_ = cfg.listen;
  l->max_connections = cfg.max_connections;
  l->on_accept_ = std::move(on_accept);
  auto tcp = UvHandle<uv_tcp_t>::create(uv_tcp_init, loop);
  if (!tcp) return unexpected("listener " + cfg.name + ": " + tcp.error());
  l->tcp_ = std::move(tcp).value();
  l->tcp_->data = l.get();
  auto fail = [&](const char* what, int rc) {
    return unexpected("listener " + cfg.name + ": " + what + " " + cfg.listen.text + ": " +
                      uv_strerror(rc));
  };
  int rc = uv_tcp_bind(l->tcp_.get(), cfg.listen.sa(), 0);
  if (rc != 0) return fail("bind", rc);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(l->tcp_.get()), kBacklog,
                 &Listener::on_connection);
  if (rc != 0) return fail("listen", rc);
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getsockname(l->tcp_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  l->bound_ = socket_name(ss);
  return l;
}

void Listener::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Listener*>(server->data);
  if (self == nullptr) return;
  if (status != 0) {
    // EMFILE/ENFILE: libuv already dropped the connection via its reserve
    // descriptor. Say so, but not once per connection.
    static uint64_t last_warn_ms = 0;
    uint64_t now = uv_now(server->loop);
    if (now - last_warn_ms > 1000) {
      spdlog::warn("listener {}: accept: {}", self->name_, uv_strerror(status));
      last_warn_ms = now;
    }
    return;
  }
  if (self->active >= self->max_connections) {
    accept_and_drop(server);
    return;
  }
  self->on_accept_(*self, server);
}

void accept_and_drop(uv_stream_t* server) {
  auto tcp = UvHandle<uv_tcp_t>::create(uv_tcp_init, server->loop);
  if (!tcp) return;
  uv_accept(server, reinterpret_cast<uv_stream_t*>(tcp->get()));
  // ~UvHandle closes it.
}

}  // namespace sluice::proxy
