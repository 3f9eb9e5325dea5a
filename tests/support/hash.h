// Body checksums for tests and the test backend.
//
// Bodies in tests reach tens of MiB and the backend hashes every /echo and
// /hash upload inline, so the hash must not be the bottleneck of a benchmark.
// Byte-wise FNV-1a runs at ~0.9 GB/s here; this variant consumes 64-bit
// words (FNV-1a step plus a xor-shift so high bits feed back down) at ~4 GB/s.
// It is only a checksum for comparing bodies, not a standard or secure hash:
// tests must compute expected values with these helpers, never by hand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::test {

// Incremental form: update() may be called with any split of the input and
// gives the same digest as hashing the concatenation at once.
class BodyHasher {
 public:
  void update(std::string_view data);
  uint64_t digest() const;
  uint64_t length() const { return length_; }

 private:
  void mix_word(uint64_t w);

  uint64_t state_ = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  uint64_t length_ = 0;
  unsigned char tail_[8] = {};  // bytes of an incomplete word
  size_t tail_len_ = 0;
};

uint64_t body_hash(std::string_view data);

// 16 lower-case hex digits, the form used in X-Body-Hash headers.
std::string hex64(uint64_t v);

// The deterministic body served by the backend's /bytes: byte i is
// 'a' + i % 26.
std::string pattern_body(size_t n);

}  // namespace sluice::test
