#include "proxy/listener.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::proxy {

namespace {
constexpr int kBacklog = 1024;

// /dev/null costs nothing to hold and never blocks to open.
int open_reserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

// Whether a rate-limited warning may be logged now (and notes that it was).
bool warn_now(uv_loop_t* loop, uint64_t& last_ms) {
  uint64_t now = uv_now(loop);
  if (last_ms != 0 && now - last_ms < 1000) return false;
  last_ms = now;
  return true;
}

}  // namespace

PeerKey peer_key(const sockaddr_storage& ss) {
  PeerKey k;
  if (ss.ss_family == AF_INET6) {
    std::memcpy(k.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, 16);
  } else {
    k.bytes[10] = k.bytes[11] = 0xff;  // ::ffff:a.b.c.d
    std::memcpy(k.bytes.data() + 12, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, 4);
  }
  return k;
}

void format_peer(const PeerKey& key, bool v6, std::string& out) {
  char text[INET6_ADDRSTRLEN] = "";
  if (v6) inet_ntop(AF_INET6, key.bytes.data(), text, sizeof text);
  else inet_ntop(AF_INET, key.bytes.data() + 12, text, sizeof text);
  out.assign(text);  // assign: keeps the string's capacity
}

size_t PeerKeyHash::operator()(const PeerKey& k) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (uint8_t b : k.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

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

Listener::~Listener() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

Result<std::unique_ptr<Listener>> Listener::bind(uv_loop_t* loop, const config::Listener& cfg,
                                                 AcceptFn on_accept) {
  std::unique_ptr<Listener> l(new Listener());
  l->loop_ = loop;
  l->name_ = cfg.name;
  l->address_ = cfg.listen;
  l->max_connections = cfg.max_connections;
  l->max_per_ip = cfg.max_connections_per_ip;
  l->on_accept_ = std::move(on_accept);
  l->reserve_fd_ = open_reserve();
  if (l->reserve_fd_ < 0) {
    return unexpected("listener " + cfg.name + ": open /dev/null: " + std::strerror(errno));
  }
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
    // libuv calls again at once while the connection stays pending, so
    // unless it is taken off the backlog here the loop spins.
    if (status == UV_EMFILE || status == UV_ENFILE) self->shed_pending();
    if (warn_now(server->loop, self->last_emfile_warn_ms_)) {
      spdlog::warn("listener {}: accept: {}; pending connections are closed", self->name_,
                   uv_strerror(status));
    }
    return;
  }
  if (self->active >= self->max_connections) {
    accept_and_drop(server);
    return;
  }
  self->on_accept_(*self, server);
}

void Listener::shed_pending() {
  uv_os_fd_t fd = -1;
  if (uv_fileno(tcp_.handle(), &fd) != 0) return;
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
  }
  for (;;) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c >= 0) {
      ::close(c);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    break;  // EAGAIN: the backlog is empty; EMFILE: the reserve went to another thread
  }
  reserve_fd_ = open_reserve();
}

bool Listener::admit(const sockaddr_storage& peer, PeerKey* key, bool* counted) {
  *counted = false;
  if (max_per_ip == 0) return true;
  *key = peer_key(peer);
  uint32_t& n = per_ip_[*key];
  if (n >= max_per_ip) {
    if (warn_now(loop_, last_per_ip_warn_ms_)) {
      char ip[64] = "";
      if (peer.ss_family == AF_INET6) {
        uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&peer), ip, sizeof ip);
      } else {
        uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&peer), ip, sizeof ip);
      }
      spdlog::warn("listener {}: {} is at max_connections_per_ip ({}); closing its new connection",
                   name_, ip, max_per_ip);
    }
    return false;
  }
  ++n;
  *counted = true;
  return true;
}

void Listener::release(const PeerKey& key) {
  auto it = per_ip_.find(key);
  if (it == per_ip_.end()) return;
  if (--it->second == 0) per_ip_.erase(it);
}

void accept_and_drop(uv_stream_t* server) {
  auto tcp = UvHandle<uv_tcp_t>::create(uv_tcp_init, server->loop);
  if (!tcp) return;
  uv_accept(server, reinterpret_cast<uv_stream_t*>(tcp->get()));
  // ~UvHandle closes it.
}

}  // namespace sluice::proxy
