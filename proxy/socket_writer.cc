#include "proxy/socket_writer.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <string>

#include "core/free_list.h"

namespace sluice::proxy {

// On Unix libuv defines uv_buf_t to be laid out as struct iovec, so a
// caller's buffers go to the kernel as they are.
static_assert(sizeof(uv_buf_t) == sizeof(iovec));
static_assert(offsetof(uv_buf_t, base) == offsetof(iovec, iov_base));
static_assert(offsetof(uv_buf_t, len) == offsetof(iovec, iov_len));

struct SocketWriter::Piece {
  Piece* next = nullptr;
  size_t sent = 0;  // of bytes, already written
  std::string bytes;
};

namespace {

// Loop thread only. Pieces keep their string's capacity across uses, up to
// a bound, so a burst of large queued responses is not held forever.
thread_local FreeList<SocketWriter::Piece, 1024> free_pieces;
constexpr size_t kKeepCapacity = 256 * 1024;
// Small writes queued behind each other share one piece.
constexpr size_t kCoalesce = 64 * 1024;
constexpr int kMaxIov = 16;

// sendmsg rather than writev for MSG_NOSIGNAL: a client gone mid-write is an
// error to handle, never a signal.
ssize_t send_iov(int fd, iovec* iov, int n) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  ssize_t w;
  do {
    w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  return w;
}

void recycle(SocketWriter::Piece* p) {
  if (p->bytes.capacity() > kKeepCapacity) {
    delete p;
    return;
  }
  free_pieces.give(p);
}

}  // namespace

size_t append_unsent(std::string& out, const uv_buf_t* bufs, unsigned nbufs, size_t sent) {
  size_t appended = 0;
  for (unsigned i = 0; i < nbufs; ++i) {
    if (sent >= bufs[i].len) {
      sent -= bufs[i].len;
      continue;
    }
    out.append(bufs[i].base + sent, bufs[i].len - sent);
    appended += bufs[i].len - sent;
    sent = 0;
  }
  return appended;
}

int SocketWriter::write(int fd, const uv_buf_t* bufs, unsigned nbufs) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; ++i) total += bufs[i].len;
  if (total == 0) return 0;

  size_t skip = 0;  // bytes the kernel took now
  if (head_ == nullptr) {
    // Callers pass a handful of pieces (head, body, chunk framing).
    iovec iov[kMaxIov];
    int n = 0;
    for (unsigned i = 0; i < nbufs && n < kMaxIov; ++i) {
      if (bufs[i].len > 0) iov[n++] = {bufs[i].base, bufs[i].len};
    }
    ssize_t w = send_iov(fd, iov, n);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    if (w > 0) skip = static_cast<size_t>(w);
    if (skip == total) return 0;
  }

  Piece* tail = head_;
  while (tail != nullptr && tail->next != nullptr) tail = tail->next;
  Piece* p = tail;
  if (p == nullptr || p->bytes.size() + (total - skip) > kCoalesce) {
    p = free_pieces.take();
    p->next = nullptr;
    p->sent = 0;
    p->bytes.clear();
    if (tail != nullptr) tail->next = p;
    else head_ = p;
  }
  queued_ += append_unsent(p->bytes, bufs, nbufs, skip);
  return 0;
}

int SocketWriter::flush(int fd) {
  while (head_ != nullptr) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t offered = 0;
    for (Piece* p = head_; p != nullptr && n < kMaxIov; p = p->next) {
      iov[n++] = {p->bytes.data() + p->sent, p->bytes.size() - p->sent};
      offered += p->bytes.size() - p->sent;
    }
    ssize_t w = send_iov(fd, iov, n);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
    size_t left = static_cast<size_t>(w);
    queued_ -= left;
    while (left > 0) {
      Piece* p = head_;
      size_t rest = p->bytes.size() - p->sent;
      if (left < rest) {
        p->sent += left;
        break;
      }
      left -= rest;
      head_ = p->next;
      recycle(p);
    }
    if (static_cast<size_t>(w) < offered) return 0;  // the kernel is full
  }
  return 0;
}

void SocketWriter::clear() {
  while (head_ != nullptr) {
    Piece* p = head_;
    head_ = p->next;
    recycle(p);
  }
  queued_ = 0;
}

}  // namespace sluice::proxy
