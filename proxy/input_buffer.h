// A connection's read buffer. libuv's alloc callback reads straight into it;
// bytes the parser has not consumed yet (a paused pipelined request) stay.
// The block is taken lazily and given back when the connection goes idle
// with nothing buffered, so an idle keep-alive connection holds no buffer,
// and blocks cycle through a free list instead of malloc.
//
// Heads and small bodies fit a 16 KiB block. A read that fills all the room
// there is means a bulk transfer: at the next point where nothing is
// buffered the block is swapped for a 256 KiB one, so a large body moves in
// a sixteenth of the system calls. The large block goes back with the
// connection's next idle moment, like the small one.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::proxy {

class InputBuffer {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;
  static constexpr size_t kLargeBlockSize = 256 * 1024;

  InputBuffer() = default;
  InputBuffer(const InputBuffer&) = delete;
  InputBuffer& operator=(const InputBuffer&) = delete;
  ~InputBuffer() { release(); }

  // Free space to read into (empty when full). Moves unread bytes to the
  // front first when that makes room.
  uv_buf_t writable();
  void commit(size_t n) {
    end_ += static_cast<uint32_t>(n);
    if (!large_ && end_ == kBlockSize) want_large_ = true;
  }

  std::string_view readable() const { return {data_ + begin_, end_ - begin_}; }
  bool empty() const { return begin_ == end_; }
  bool full() const { return data_ != nullptr && begin_ == 0 && end_ == capacity(); }
  // Of the block held now; 0 if none.
  size_t capacity() const { return data_ == nullptr ? 0 : large_ ? kLargeBlockSize : kBlockSize; }
  void consume(size_t n);

  // Returns the block to the free list if nothing is buffered.
  void release_if_empty() {
    if (empty()) release();
  }

 private:
  void release();

  // 24 bytes: every client connection has one, idle or not.
  char* data_ = nullptr;
  uint32_t begin_ = 0;
  uint32_t end_ = 0;
  bool large_ = false;       // data_ is a kLargeBlockSize block
  bool want_large_ = false;  // a read filled a small block: swap when empty
};

}  // namespace sluice::proxy
