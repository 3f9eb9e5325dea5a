#include "proxy/input_buffer.h"

#include <cstring>
#include <vector>

namespace sluice::proxy {

namespace {
// Loop thread only (every connection lives on the loop), so no lock.
std::vector<char*>& free_blocks() {
  static std::vector<char*> blocks;
  return blocks;
}
constexpr size_t kMaxFreeBlocks = 4096;  // 64 MiB of cached blocks at most
}  // namespace

uv_buf_t InputBuffer::writable() {
  if (data_ == nullptr) {
    auto& blocks = free_blocks();
    if (blocks.empty()) {
      data_ = new char[kBlockSize];
    } else {
      data_ = blocks.back();
      blocks.pop_back();
    }
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
  auto& blocks = free_blocks();
  if (blocks.size() < kMaxFreeBlocks) blocks.push_back(data_);
  else delete[] data_;
  data_ = nullptr;
  begin_ = end_ = 0;
}

}  // namespace sluice::proxy
