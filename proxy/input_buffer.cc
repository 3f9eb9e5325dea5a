#include "proxy/input_buffer.h"

#include <cstring>

#include "core/free_list.h"

namespace sluice::proxy {

namespace {
struct Block {
  char bytes[InputBuffer::kBlockSize];
};
struct LargeBlock {
  char bytes[InputBuffer::kLargeBlockSize];
};
// Loop thread only (every connection lives on the loop), so no lock.
// At most 64 MiB of spare blocks of each size.
thread_local FreeList<Block, 4096> free_blocks;
thread_local FreeList<LargeBlock, 256> free_large_blocks;
}  // namespace

uv_buf_t InputBuffer::writable() {
  if (want_large_ && data_ != nullptr && !large_ && empty()) release();
  if (data_ == nullptr) {
    large_ = want_large_;
    data_ = large_ ? free_large_blocks.take()->bytes : free_blocks.take()->bytes;
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

void InputBuffer::release() {
  if (data_ == nullptr) return;
  if (large_) {
    free_large_blocks.give(reinterpret_cast<LargeBlock*>(data_));
    want_large_ = false;  // the next exchange starts small again
  } else {
    free_blocks.give(reinterpret_cast<Block*>(data_));
  }
  data_ = nullptr;
  large_ = false;
  begin_ = end_ = 0;
}

}  // namespace sluice::proxy
