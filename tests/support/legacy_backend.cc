// The poller side of sluice-legacy-backend: listening, accepting, watching
// idle connections, the queue, the app's own 503 and the endpoints the
// poller answers itself. The worker side is legacy_backend_worker.cc.
#include "tests/support/legacy_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "tests/support/legacy_backend_http.h"

namespace sluice::test {

namespace {

void raise_peak(std::atomic<int64_t>& peak, int64_t v) {
  int64_t cur = peak.load();
  while (v > cur && !peak.compare_exchange_weak(cur, v)) {
  }
}

// Sends what the socket takes now; the poller never blocks on a client.
bool send_now(int fd, const std::string& bytes) {
  ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n == static_cast<ssize_t>(bytes.size());
}

}  // namespace

std::string LegacyStats::json(const LegacyOptions& o) const {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "{\"served\":%llu,\"rejected\":%llu,\"busy\":%lld,\"peak_busy\":%lld,"
                "\"queued\":%lld,\"peak_queue\":%lld,\"threads\":%u,\"queue\":%u}\n",
                static_cast<unsigned long long>(served.load()),
                static_cast<unsigned long long>(rejected.load()),
                static_cast<long long>(busy.load()), static_cast<long long>(peak_busy.load()),
                static_cast<long long>(queued.load()), static_cast<long long>(peak_queue.load()),
                o.threads, o.queue);
  return buf;
}

void LegacyStats::reset() {
  served = 0;
  rejected = 0;
  // The peaks restart from what is happening now, not from zero: a request
  // in flight during the reset is still in flight after it.
  peak_busy = busy.load();
  peak_queue = queued.load();
}

void note_busy(LegacyStats& s, int64_t delta) {
  int64_t now = s.busy.fetch_add(delta) + delta;
  raise_peak(s.peak_busy, now);
}

LegacyBackend::LegacyBackend(LegacyOptions options) : opts_(std::move(options)) {}

LegacyBackend::~LegacyBackend() { stop(); }

int LegacyBackend::start() {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = opts_.host.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(opts_.port);
    if (::inet_pton(AF_INET6, opts_.host.c_str(), &a->sin6_addr) != 1) return -EINVAL;
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(opts_.port);
    if (::inet_pton(AF_INET, opts_.host.c_str(), &a->sin_addr) != 1) return -EINVAL;
    len = sizeof *a;
  }
  listen_fd_ = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return -errno;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A real app's accept backlog is long; connections beyond the queue are
  // refused by the app (503), not by the kernel.
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(listen_fd_, 1024) != 0) {
    return -errno;
  }
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  int port = family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) return -errno;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_tag_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.ptr = &wake_tag_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);

  for (unsigned i = 0; i < opts_.threads; ++i) workers_.emplace_back([this, i] { work_loop(i); });
  poller_ = std::thread([this] { poll_loop(); });
  return port;
}

void LegacyBackend::stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
  if (poller_.joinable()) poller_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  work_ready_.notify_all();
  // A worker may sit in a blocking read or write on a slow client: cut the
  // socket under it. The poller is gone, so no socket is closed meanwhile.
  for (auto& [ptr, conn] : conns_) ::shutdown(conn->fd, SHUT_RDWR);
  for (auto& w : workers_) w.join();
  workers_.clear();
  for (auto& [ptr, conn] : conns_) ::close(conn->fd);
  conns_.clear();
  for (int* fd : {&listen_fd_, &epoll_fd_, &wake_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void LegacyBackend::poll_loop() {
  epoll_event events[64];
  while (!stopping_) {
    int n = ::epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("sluice-legacy-backend: epoll_wait");
      return;
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &listen_tag_) {
        accept_all();
      } else if (tag == &wake_tag_) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        take_back_returned();
      } else {
        on_readable(static_cast<LegacyConn*>(tag));
      }
    }
  }
}

void LegacyBackend::accept_all() {
  for (;;) {
    // Accepted sockets are blocking: workers read and write them the
    // thread-per-request way.
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or out of descriptors (retried on the next event)
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Real apps give up on a silent client eventually; so does this one.
    timeval tv{60, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    auto conn = std::make_unique<LegacyConn>();
    conn->fd = fd;
    LegacyConn* c = conn.get();
    conns_.emplace(c, std::move(conn));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = c;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

void LegacyBackend::rearm(LegacyConn* c) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = c;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void LegacyBackend::destroy(LegacyConn* c) {
  ::close(c->fd);  // also leaves the epoll set
  conns_.erase(c);
}

void LegacyBackend::on_readable(LegacyConn* c) {
  char probe[1];
  ssize_t n = ::recv(c->fd, probe, sizeof probe, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    destroy(c);  // an idle client went away; no thread needs to learn that
    return;
  }
  if (n < 0) {
    rearm(c);
    return;
  }
  if (answer_locally(c)) return;
  dispatch(c);
}

bool LegacyBackend::answer_locally(LegacyConn* c) {
  char buf[2048];
  ssize_t n = ::recv(c->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return false;
  std::string_view data(buf, static_cast<size_t>(n));
  size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) return false;
  std::string_view head = data.substr(0, end + 4);
  std::optional<LocalAnswer> answer = local_answer(head, *this);
  if (!answer) return false;
  // Consume exactly this head; a pipelined request behind it stays queued
  // in the socket and wakes the poller again.
  char sink[2048];
  if (::recv(c->fd, sink, head.size(), MSG_DONTWAIT) != static_cast<ssize_t>(head.size())) {
    destroy(c);
    return true;
  }
  if (!send_now(c->fd, answer->bytes) || answer->close) {
    destroy(c);
  } else {
    rearm(c);
  }
  return true;
}

void LegacyBackend::dispatch(LegacyConn* c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() < opts_.queue) {
      queue_.push_back(c);
      int64_t len = static_cast<int64_t>(queue_.size());
      stats_.queued = len;
      raise_peak(stats_.peak_queue, len);
      work_ready_.notify_one();
      return;
    }
  }
  // The app's own overload answer. Read what the client sent so the close
  // is a FIN, not a reset that could destroy the 503 before it is read.
  char sink[16384];
  while (::recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  ++stats_.rejected;
  send_now(c->fd, overloaded_reply());
  ::shutdown(c->fd, SHUT_WR);
  destroy(c);
}

void LegacyBackend::give_back(LegacyConn* c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    returned_.push_back(c);
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void LegacyBackend::take_back_returned() {
  std::vector<LegacyConn*> back;
  {
    std::lock_guard<std::mutex> lock(mu_);
    back.swap(returned_);
  }
  for (LegacyConn* c : back) {
    if (c->close) {
      destroy(c);
    } else if (!c->pending.empty()) {
      dispatch(c);  // the next pipelined request is already here
    } else {
      rearm(c);
    }
  }
}

}  // namespace sluice::test
