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
  if (want_large_ && data_ != nullptr && capacity_ == kBlockSize && empty()) release();
  if (data_ == nullptr) {
    if (want_large_) {
      data_ = free_large_blocks.take()->bytes;
      capacity_ = kLargeBlockSize;
    } else {
      data_ = free_blocks.take()->bytes;
      capacity_ = kBlockSize;
    }
    begin_ = end_ = 0;
  }
  if (begin_ > 0 && (end_ == capacity_ || begin_ >= capacity_ / 2)) {
    std::memmove(data_, data_ + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return uv_buf_init(data_ + end_, static_cast<unsigned>(capacity_ - end_));
}

void InputBuffer::consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

void InputBuffer::release() {
  if (data_ == nullptr) return;
  if (capacity_ == kLargeBlockSize) {
    free_large_blocks.give(reinterpret_cast<LargeBlock*>(data_));
    want_large_ = false;  // the next exchange starts small again
  } else {
    free_blocks.give(reinterpret_cast<Block*>(data_));
  }
  data_ = nullptr;
  capacity_ = 0;
  begin_ = end_ = 0;
}

}  // namespace sluice::proxy
