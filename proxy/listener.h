// A listening socket. Accepted connections are handed to the Server; past
// max_connections (or max_connections_per_ip for one client address) they
// are accepted and closed at once, so the kernel's backlog never fills with
// connections nobody will serve.
//
// The socket is ours and polled with a uv_poll_t, not a uv_tcp_t: accept4()
// hands each connection over as a bare descriptor with its peer address,
// and a client connection polls it itself (see client_connection.h).
//
// At EMFILE a ready listener whose connections cannot be accepted would
// make the loop spin. Each Listener keeps a reserve descriptor: at
// EMFILE/ENFILE it closes the reserve, accepts and closes what is pending,
// and opens the reserve again.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice::proxy {

// A client address for max_connections_per_ip: IPv4 as its IPv4-mapped IPv6
// form, so both spellings of one address count together.
struct PeerKey {
  std::array<uint8_t, 16> bytes{};
  bool operator==(const PeerKey&) const = default;
};
struct PeerKeyHash {
  size_t operator()(const PeerKey& k) const;
};
// An IPv4 peer becomes ::ffff:a.b.c.d.
PeerKey peer_key(const sockaddr_storage& ss);
// The address as text, as uv_ip4_name / uv_ip6_name write it.
void format_peer(const PeerKey& key, bool v6, std::string& out);

// What the listeners of one name count together, when several loops
// (io_threads) each have a socket on the address: max_connections and
// max_connections_per_ip hold for the listener, not for each loop.
struct ListenerShare {
  std::atomic<uint32_t> active{0};  // connections accepted and not yet closed
  std::mutex mu;                    // for per_ip
  std::unordered_map<PeerKey, uint32_t, PeerKeyHash> per_ip;  // open connections per address
};

struct ListenerOptions {
  // SO_REUSEPORT: every loop binds a socket of its own to the address and
  // the kernel spreads new connections over them.
  bool reuse_port = false;
  // Bind here instead of the configured address: the address another
  // loop's socket got (port 0 resolved).
  std::optional<sockaddr_storage> at;
  std::shared_ptr<ListenerShare> share;  // null: a new one
};

class Listener {
 public:
  // Called for each accepted connection (non-blocking, close-on-exec); the
  // callee owns `fd` and must close it if it does not keep it.
  using AcceptFn = std::function<void(Listener& self, int fd, const sockaddr_storage& peer)>;

  static Result<std::unique_ptr<Listener>> bind(uv_loop_t* loop, const config::Listener& cfg,
                                                AcceptFn on_accept, ListenerOptions opts = {});

  const std::string& name() const { return name_; }
  // The address actually bound (port 0 resolved), e.g. "127.0.0.1:43817".
  const std::string& bound() const { return bound_; }
  const config::SocketAddress& address() const { return address_; }
  // The bound address, for another loop to bind to.
  const sockaddr_storage& bound_address() const { return bound_ss_; }
  const std::shared_ptr<ListenerShare>& share() const { return share_; }

  // Stops accepting; established connections are not touched.
  void close();

  // Reload: the same socket under new settings.
  void reconfigure(const config::Listener& cfg) {
    name_ = cfg.name;
    max_connections = cfg.max_connections;
    max_per_ip = cfg.max_connections_per_ip;
  }

  // max_connections_per_ip, for a connection just accepted from `peer`:
  // false if that address is at its limit (nothing is counted then).
  // Otherwise *counted says whether it was counted under *key (only while
  // a limit is set), and a counted connection must be given back with
  // release(*key) when it closes.
  bool admit(const sockaddr_storage& peer, PeerKey* key, bool* counted);
  void release(const PeerKey& key);

  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Connections accepted and not yet closed, on every loop.
  uint32_t active() const { return share_->active.load(std::memory_order_relaxed); }
  // A connection this listener accepted has closed.
  void closed() { share_->active.fetch_sub(1, std::memory_order_relaxed); }
  uint32_t max_connections = 0;
  uint32_t max_per_ip = 0;    // 0: no limit

  // Connections accepted and closed at once, by reason (for /metrics).
  enum Refusal : uint8_t { MaxConnections, MaxPerIp, FdLimit, kRefusals };
  static const char* refusal_name(Refusal r);
  std::array<uint64_t, kRefusals> refused{};

 private:
  Listener() = default;
  static void on_readable(uv_poll_t* handle, int status, int events);
  void accept_pending();
  // EMFILE/ENFILE: frees the reserve descriptor, accepts and closes every
  // pending connection, takes the reserve again.
  void shed_pending();

  uv_loop_t* loop_ = nullptr;
  UvHandle<uv_poll_t> poll_;
  int fd_ = -1;
  int reserve_fd_ = -1;
  std::shared_ptr<ListenerShare> share_;
  // At most one warning a second each: a flood must not flood the log too.
  uint64_t last_emfile_warn_ms_ = 0;
  uint64_t last_per_ip_warn_ms_ = 0;
  AcceptFn on_accept_;
  std::string name_;
  std::string bound_;
  sockaddr_storage bound_ss_{};
  config::SocketAddress address_;
};

// "127.0.0.1:8080" or "[::1]:8080" for a bound or peer address.
std::string socket_name(const sockaddr_storage& ss);

}  // namespace sluice::proxy
