#include "proxy/input_buffer.h"

#include <cstring>

#include "core/free_list.h"

namespace sluice::proxy {

namespace {
struct Block {
  char bytes[InputBuffer::kBlockSize];
};
// Loop thread only (every connection lives on the loop), so no lock.
// At most 64 MiB of spare blocks.
thread_local FreeList<Block, 4096> free_blocks;
}  // namespace

uv_buf_t InputBuffer::writable() {
  if (data_ == nullptr) {
    data_ = free_blocks.take()->bytes;
    begin_ = end_ = 0;
  }
  if (begin_ > 0 && (end_ == kBlockSize || begin_ >= kBlockSize / 2)) {
    std::memmove(data_, data_ + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return uv_buf_init(data_ + end_, static_cast<unsigned>(kBlockSize - end_));
}

void InputBuffer::consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

void InputBuffer::release() {
  if (data_ == nullptr) return;
  free_blocks.give(reinterpret_cast<Block*>(data_));
  data_ = nullptr;
  begin_ = end_ = 0;
}

}  // namespace sluice::proxy
