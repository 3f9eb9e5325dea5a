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
// Connections taken per wake-up of a listener.
constexpr int kAcceptBatch = 256;

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
  if (v6) {
    inet_ntop(AF_INET6, key.bytes.data(), text, sizeof text);
    out.assign(text);  // assign: keeps the string's capacity
    return;
  }
  // Every request formats its client's address (X-Forwarded-For, the access
  // log), and glibc's inet_ntop formats IPv4 through sprintf: 0.6 % of the
  // loop's time at light load. Four numbers are quicker by hand.
  size_t n = 0;  // at most 15: "255.255.255.255"
  for (size_t i = 12; i < 16; ++i) {
    const unsigned v = key.bytes[i];
    if (i > 12) text[n++] = '.';
    if (v >= 100) text[n++] = static_cast<char>('0' + v / 100);
    if (v >= 10) text[n++] = static_cast<char>('0' + v / 10 % 10);
    text[n++] = static_cast<char>('0' + v % 10);
  }
  out.assign(text, n);
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
  close();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void Listener::close() {
  poll_.close();  // stops polling before the descriptor goes
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<std::unique_ptr<Listener>> Listener::bind(uv_loop_t* loop, const config::Listener& cfg,
                                                 AcceptFn on_accept, ListenerOptions opts) {
  std::unique_ptr<Listener> l(new Listener());
  l->loop_ = loop;
  l->name_ = cfg.name;
  l->address_ = cfg.listen;
  l->max_connections = cfg.max_connections;
  l->max_per_ip = cfg.max_connections_per_ip;
  l->on_accept_ = std::move(on_accept);
  l->share_ = opts.share ? std::move(opts.share) : std::make_shared<ListenerShare>();
  auto fail = [&](const char* what) {
    return unexpected("listener " + cfg.name + ": " + what + " " + cfg.listen.text + ": " +
                      std::strerror(errno));
  };
  l->reserve_fd_ = open_reserve();
  if (l->reserve_fd_ < 0) return fail("open /dev/null for");
  const sockaddr* sa = opts.at ? reinterpret_cast<const sockaddr*>(&*opts.at) : cfg.listen.sa();
  l->fd_ = ::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd_ < 0) return fail("socket for");
  int one = 1;
  // As every server does: a restart binds again while old connections
  // linger in TIME_WAIT.
  ::setsockopt(l->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (opts.reuse_port && ::setsockopt(l->fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return fail("SO_REUSEPORT for");
  }
  const socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(l->fd_, sa, len) != 0) return fail("bind");
  if (::listen(l->fd_, kBacklog) != 0) return fail("listen");
  sockaddr_storage ss{};
  socklen_t ss_len = sizeof ss;
  ::getsockname(l->fd_, reinterpret_cast<sockaddr*>(&ss), &ss_len);
  l->bound_ = socket_name(ss);
  l->bound_ss_ = ss;
  auto poll = UvHandle<uv_poll_t>::create(uv_poll_init, loop, l->fd_);
  if (!poll) return unexpected("listener " + cfg.name + ": " + poll.error());
  l->poll_ = std::move(poll).value();
  l->poll_->data = l.get();
  uv_poll_start(l->poll_.get(), UV_READABLE, &Listener::on_readable);
  return l;
}

void Listener::on_readable(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<Listener*>(handle->data);
  if (self == nullptr || status < 0) return;
  self->accept_pending();
}

void Listener::accept_pending() {
  // A bounded batch: the poll is level-triggered, so what is left is taken
  // on the next iteration, after the connections that are already open.
  for (int i = 0; i < kAcceptBatch && fd_ >= 0; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      const int err = errno;
      // Left in the backlog, these would wake the loop again at once.
      if (err == EMFILE || err == ENFILE) shed_pending();
      if (warn_now(loop_, last_emfile_warn_ms_)) {
        spdlog::warn("listener {}: accept: {}; pending connections are closed", name_,
                     std::strerror(err));
      }
      return;
    }
    // Counted before it is handed on; given back by closed().
    if (share_->active.fetch_add(1, std::memory_order_relaxed) >= max_connections) {
      share_->active.fetch_sub(1, std::memory_order_relaxed);
      ::close(c);
      ++refused[MaxConnections];
      continue;
    }
    on_accept_(*this, c, peer);
  }
}

void Listener::shed_pending() {
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
  }
  for (;;) {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c >= 0) {
      ::close(c);
      ++refused[FdLimit];
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
  std::unique_lock lock(share_->mu);
  uint32_t& n = share_->per_ip[*key];
  if (n >= max_per_ip) {
    lock.unlock();
    ++refused[MaxPerIp];
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

const char* Listener::refusal_name(Refusal r) {
  switch (r) {
    case MaxConnections: return "max_connections";
    case MaxPerIp: return "max_connections_per_ip";
    case FdLimit: return "fd_limit";
    case kRefusals: break;
  }
  return "?";
}

void Listener::release(const PeerKey& key) {
  std::lock_guard lock(share_->mu);
  auto it = share_->per_ip.find(key);
  if (it == share_->per_ip.end()) return;
  if (--it->second == 0) share_->per_ip.erase(it);
}

}  // namespace sluice::proxy
