#include "tests/support/hash.h"

#include <algorithm>
#include <cstring>

namespace sluice::test {

namespace {
constexpr uint64_t kFnvPrime = 0x100000001b3ull;
}

void BodyHasher::mix_word(uint64_t w) {
  state_ ^= w;
  state_ *= kFnvPrime;
  state_ ^= state_ >> 32;
}

void BodyHasher::update(std::string_view data) {
  length_ += data.size();
  const char* p = data.data();
  size_t n = data.size();
  if (tail_len_ > 0) {
    size_t take = std::min(n, sizeof tail_ - tail_len_);
    std::memcpy(tail_ + tail_len_, p, take);
    tail_len_ += take;
    p += take;
    n -= take;
    if (tail_len_ < sizeof tail_) return;
    uint64_t w;
    std::memcpy(&w, tail_, sizeof w);
    mix_word(w);
    tail_len_ = 0;
  }
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);  // unaligned-safe; compiles to one load
    mix_word(w);
  }
  std::memcpy(tail_, p, n);
  tail_len_ = n;
}

uint64_t BodyHasher::digest() const {
  uint64_t h = state_;
  for (size_t i = 0; i < tail_len_; ++i) {  // the tail is plain FNV-1a
    h ^= tail_[i];
    h *= kFnvPrime;
  }
  return h;
}

uint64_t body_hash(std::string_view data) {
  BodyHasher h;
  h.update(data);
  return h.digest();
}

std::string hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[i] = kDigits[v & 0xf];
  return s;
}

std::string pattern_body(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

}  // namespace sluice::test
