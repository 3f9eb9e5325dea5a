#include "proxy/input_buffer.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <string>

namespace sluice::proxy {
namespace {

// Reads `bytes` into the buffer the way libuv does: at most what writable()
// offers. Returns how much went in.
size_t read_into(InputBuffer& in, const std::string& bytes) {
  uv_buf_t room = in.writable();
  size_t n = std::min<size_t>(room.len, bytes.size());
  std::memcpy(room.base, bytes.data(), n);
  in.commit(n);
  return n;
}

TEST_CASE("input buffer: lazy block, small reads stay in 16 KiB", "[input_buffer]") {
  InputBuffer in;
  CHECK(in.capacity() == 0);
  CHECK(read_into(in, "GET / HTTP/1.1\r\n\r\n") == 18);
  CHECK(in.capacity() == InputBuffer::kBlockSize);
  CHECK(in.readable() == "GET / HTTP/1.1\r\n\r\n");
  in.consume(18);
  in.release_if_empty();
  CHECK(in.capacity() == 0);
  read_into(in, "x");
  CHECK(in.capacity() == InputBuffer::kBlockSize);
}

TEST_CASE("input buffer: a read that fills the block moves to a large one once drained",
          "[input_buffer]") {
  InputBuffer in;
  std::string big(1024 * 1024, 'b');
  CHECK(read_into(in, big) == InputBuffer::kBlockSize);
  CHECK(in.full());
  // Unread bytes stay where they are: no swap while anything is buffered.
  CHECK(in.writable().len == 0);
  CHECK(in.capacity() == InputBuffer::kBlockSize);
  in.consume(InputBuffer::kBlockSize - 10);
  uv_buf_t room = in.writable();  // compacts the 10 left
  CHECK(in.capacity() == InputBuffer::kBlockSize);
  CHECK(room.len == InputBuffer::kBlockSize - 10);
  CHECK(in.readable() == std::string(10, 'b'));
  in.consume(10);
  CHECK(read_into(in, big) == InputBuffer::kLargeBlockSize);
  CHECK(in.capacity() == InputBuffer::kLargeBlockSize);
  CHECK(in.readable().size() == InputBuffer::kLargeBlockSize);
  in.consume(InputBuffer::kLargeBlockSize);
  // An idle moment gives the large block back; the next exchange starts small.
  in.release_if_empty();
  CHECK(in.capacity() == 0);
  read_into(in, "GET");
  CHECK(in.capacity() == InputBuffer::kBlockSize);
}

TEST_CASE("input buffer: bytes survive compaction in a large block", "[input_buffer]") {
  InputBuffer in;
  std::string fill(InputBuffer::kBlockSize, 'f');
  read_into(in, fill);
  in.consume(fill.size());
  std::string pattern;
  for (size_t i = 0; i < InputBuffer::kLargeBlockSize; ++i) pattern.push_back(static_cast<char>('a' + i % 26));
  CHECK(read_into(in, pattern) == pattern.size());
  in.consume(pattern.size() - 100);
  std::string tail = pattern.substr(pattern.size() - 100);
  uv_buf_t room = in.writable();
  CHECK(room.len == InputBuffer::kLargeBlockSize - 100);
  CHECK(in.readable() == tail);
}

}  // namespace
}  // namespace sluice::proxy
