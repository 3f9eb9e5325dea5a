// A connection's read buffer. Reads land straight in it; bytes the parser
// has not consumed yet (a paused pipelined request) stay. The block is taken
// lazily and given back when the connection goes idle with nothing
// buffered, so an idle keep-alive connection holds no buffer, and blocks
// cycle through free lists instead of malloc.
//
// Blocks come in three sizes, and a read that fills all the room there is
// moves the buffer up one:
//   - 2 KiB (kSmallSize), where every connection starts: a request head or
//     a small response fits (the parsers consume longer ones as they go),
//     and ten thousand clients in the middle of sending heads, slow or
//     hostile, hold 20 MiB rather than 160. The move up copies what is
//     buffered at once, and the connection stays at 16 KiB from then on.
//   - 16 KiB (kBlockSize): heads and bodies of some size.
//   - 256 KiB (kLargeBlockSize): a bulk transfer, in a sixteenth of the
//     system calls. Taken at the next point where nothing is buffered, and
//     given back at the connection's next idle moment.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::proxy {

class InputBuffer {
 public:
  static constexpr size_t kSmallSize = 2 * 1024;
  static constexpr size_t kBlockSize = 16 * 1024;
  static constexpr size_t kLargeBlockSize = 256 * 1024;
  enum Size : uint8_t { Small, Block, Large };

  InputBuffer() = default;
  InputBuffer(const InputBuffer&) = delete;
  InputBuffer& operator=(const InputBuffer&) = delete;
  ~InputBuffer() { release(); }

  // Free space to read into (empty when full). Moves unread bytes to the
  // front first when that makes room.
  uv_buf_t writable();
  void commit(size_t n) {
    end_ += static_cast<uint32_t>(n);
    if (size_ < Large && end_ == capacity()) want_ = static_cast<Size>(size_ + 1);
  }

  std::string_view readable() const { return {data_ + begin_, end_ - begin_}; }
  bool empty() const { return begin_ == end_; }
  bool full() const { return data_ != nullptr && begin_ == 0 && end_ == capacity(); }
  // Of the block held now; 0 if none.
  size_t capacity() const { return data_ == nullptr ? 0 : bytes_of(size_); }
  void consume(size_t n);

  // Returns the block to the free list if nothing is buffered.
  void release_if_empty() {
    if (empty()) release();
  }

 private:
  static size_t bytes_of(Size s) {
    return s == Small ? kSmallSize : s == Block ? kBlockSize : kLargeBlockSize;
  }
  static char* take(Size s);
  static void give(Size s, char* block);
  void release();
  void move_up();  // into a block of size want_, with what is buffered

  // 24 bytes: every client connection has one, idle or not.
  char* data_ = nullptr;
  uint32_t begin_ = 0;
  uint32_t end_ = 0;
  Size size_ = Small;   // of data_ (or of the next block, while there is none)
  Size want_ = Small;   // a read filled data_: the size to move to
  Size floor_ = Small;  // where a fresh block starts: never below what was needed
};

}  // namespace sluice::proxy
