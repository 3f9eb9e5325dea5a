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

// Moves a fresh buffer up to 16 KiB blocks; it is left empty, holding none.
void grow_to_block_size(InputBuffer& in) {
  read_into(in, std::string(InputBuffer::kSmallSize, 's'));
  in.consume(InputBuffer::kSmallSize);
  in.writable();
  in.release_if_empty();
  REQUIRE(in.capacity() == 0);
}

TEST_CASE("input buffer: lazy block, small reads stay in 2 KiB", "[input_buffer]") {
  InputBuffer in;
  CHECK(in.capacity() == 0);
  CHECK(read_into(in, "GET / HTTP/1.1\r\n\r\n") == 18);
  CHECK(in.capacity() == InputBuffer::kSmallSize);
  CHECK(in.readable() == "GET / HTTP/1.1\r\n\r\n");
  in.consume(18);
  in.release_if_empty();
  CHECK(in.capacity() == 0);
  read_into(in, "x");
  CHECK(in.capacity() == InputBuffer::kSmallSize);
}

TEST_CASE("input buffer: a read that fills a 16 KiB block moves to a large one once drained",
          "[input_buffer]") {
  InputBuffer in;
  grow_to_block_size(in);
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
  // An idle moment gives the large block back; the next exchange starts
  // at 16 KiB again, where this connection had got to.
  in.release_if_empty();
  CHECK(in.capacity() == 0);
  read_into(in, "GET");
  CHECK(in.capacity() == InputBuffer::kBlockSize);
}

TEST_CASE("input buffer: bytes survive compaction in a large block", "[input_buffer]") {
  InputBuffer in;
  grow_to_block_size(in);
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

TEST_CASE("input buffer: a client starts at 2 KiB and moves up to 16 KiB for good",
          "[input_buffer]") {
  InputBuffer in;
  CHECK(read_into(in, "GET / HTTP/1.1\r\n\r\n") == 18);
  CHECK(in.capacity() == InputBuffer::kSmallSize);
  in.consume(18);
  in.release_if_empty();
  CHECK(in.capacity() == 0);

  // A long head fills the small block; what is buffered moves up with it.
  std::string head(5000, 'h');
  CHECK(read_into(in, head) == InputBuffer::kSmallSize);
  CHECK(in.full());
  in.consume(100);  // the parser took a little, and is paused
  uv_buf_t room = in.writable();
  CHECK(in.capacity() == InputBuffer::kBlockSize);
  CHECK(room.len == InputBuffer::kBlockSize - (InputBuffer::kSmallSize - 100));
  CHECK(in.readable() == head.substr(100, InputBuffer::kSmallSize - 100));

  // It stays at 16 KiB on this connection: the next head gets one read.
  in.consume(in.readable().size());
  in.release_if_empty();
  CHECK(read_into(in, head) == head.size());
  CHECK(in.capacity() == InputBuffer::kBlockSize);
}

TEST_CASE("input buffer: a full small block moves up even while the parser waits",
          "[input_buffer]") {
  InputBuffer in;
  std::string pipelined(InputBuffer::kSmallSize, 'p');
  read_into(in, pipelined);
  // Nothing consumed: without the move the connection could not read on.
  uv_buf_t room = in.writable();
  CHECK(room.len == InputBuffer::kBlockSize - InputBuffer::kSmallSize);
  CHECK(in.readable() == pipelined);
}

}  // namespace
}  // namespace sluice::proxy
