#include "proxy/input_buffer.h"

#include <cstring>

#include "core/free_list.h"

namespace sluice::proxy {

namespace {
template <size_t N>
struct Bytes {
  char bytes[N];
};
using SmallBytes = Bytes<InputBuffer::kSmallSize>;
using BlockBytes = Bytes<InputBuffer::kBlockSize>;
using LargeBytes = Bytes<InputBuffer::kLargeBlockSize>;
// Loop thread only (every connection lives on the loop), so no lock.
// At most 8, 64 and 64 MiB of spare blocks.
thread_local FreeList<SmallBytes, 4096> free_small_blocks;
thread_local FreeList<BlockBytes, 4096> free_blocks;
thread_local FreeList<LargeBytes, 256> free_large_blocks;
}  // namespace

char* InputBuffer::take(Size s) {
  switch (s) {
    case Small: return free_small_blocks.take()->bytes;
    case Block: return free_blocks.take()->bytes;
    case Large: break;
  }
  return free_large_blocks.take()->bytes;
}

void InputBuffer::give(Size s, char* block) {
  switch (s) {
    case Small: free_small_blocks.give(reinterpret_cast<SmallBytes*>(block)); return;
    case Block: free_blocks.give(reinterpret_cast<BlockBytes*>(block)); return;
    case Large: free_large_blocks.give(reinterpret_cast<LargeBytes*>(block)); return;
  }
}

uv_buf_t InputBuffer::writable() {
  // Up from a small block at once (it is cheap to copy, and a paused
  // parser must not wait on 2 KiB); to the large one once drained.
  if (data_ != nullptr && want_ > size_ && (empty() || size_ == Small)) move_up();
  if (data_ == nullptr) {
    size_ = want_;
    data_ = take(size_);
    begin_ = end_ = 0;
  }
  const size_t cap = capacity();
  if (begin_ > 0 && (end_ == cap || begin_ >= cap / 2)) {
    std::memmove(data_, data_ + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return uv_buf_init(data_ + end_, static_cast<unsigned>(cap - end_));
}

void InputBuffer::consume(size_t n) {
  begin_ += static_cast<uint32_t>(n);
  if (begin_ == end_) begin_ = end_ = 0;
}

void InputBuffer::move_up() {
  char* next = take(want_);
  const uint32_t n = end_ - begin_;
  std::memcpy(next, data_ + begin_, n);
  give(size_, data_);
  data_ = next;
  begin_ = 0;
  end_ = n;
  size_ = want_;
  // A connection that outgrew its small block stays at 16 KiB.
  if (floor_ < Block && size_ >= Block) floor_ = Block;
}

void InputBuffer::release() {
  if (data_ == nullptr) return;
  give(size_, data_);
  data_ = nullptr;
  begin_ = end_ = 0;
  // The next exchange starts at the floor again: a bulk transfer now says
  // nothing of the next one.
  size_ = want_ = floor_;
}

}  // namespace sluice::proxy
