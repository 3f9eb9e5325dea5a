// Ordered writes to one non-blocking socket that the caller polls itself.
// write() sends at once what the kernel takes; the rest is copied into a
// queue that owns its bytes, so callers may reuse their buffers as soon as
// write() returns, and flush() sends the queue when the socket is writable.
// Copies happen only under backpressure. 16 bytes: every client connection
// has one, idle or not.
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>

namespace sluice::proxy {

// Appends to `out` what a partial write of `bufs` left unsent: every byte
// past the first `sent`. Returns how many bytes it appended.
size_t append_unsent(std::string& out, const uv_buf_t* bufs, unsigned nbufs, size_t sent);

class SocketWriter {
 public:
  SocketWriter() = default;
  SocketWriter(const SocketWriter&) = delete;
  SocketWriter& operator=(const SocketWriter&) = delete;
  ~SocketWriter() { clear(); }

  // Returns 0, or -errno (the socket is then unusable).
  int write(int fd, const uv_buf_t* bufs, unsigned nbufs);
  // Sends queued bytes until the kernel takes no more. 0 or -errno.
  int flush(int fd);

  // Bytes accepted by write() that the kernel has not taken yet.
  size_t queued() const { return queued_; }
  // Drops whatever is queued (the socket is closing).
  void clear();

  struct Piece;  // queued bytes (defined in the .cc)

 private:
  Piece* head_ = nullptr;
  size_t queued_ = 0;
};

}  // namespace sluice::proxy
