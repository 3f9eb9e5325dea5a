// An ordered byte buffer for one message body that keeps its first
// `memory_limit` bytes in memory and appends the rest to an anonymous
// temporary file. The file is created unlinked (O_TMPFILE, or mkstemp and an
// immediate unlink where the file system lacks it), so nothing is left behind
// even if sluice is killed.
//
// Every file operation (open, write, read, close, unlink) runs on libuv's
// threadpool through uv_fs_*: the loop thread never waits on the disk. The
// owner hears when a spill write finishes (to apply backpressure on its
// source while pending() is high) and gets file bytes back in order, in
// chunks, either replayed from the start any number of times (a request body
// sent again on retry) or consumed once (a response fed to a slow client).
//
// Loop thread only. reset() may be called at any time, with I/O in flight:
// the operations then finish on their own without calling the owner, and the
// file is closed once the last of them is done. The loop therefore stays
// alive (uv_run keeps running) until those operations have completed.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::proxy {

class SpillBuffer;

// Told about a SpillBuffer's file I/O. Never called from inside a
// SpillBuffer method, only from libuv callbacks, so a handler may call
// anything on the buffer, reset() included.
class SpillOwner {
 public:
  // A write to the file finished: pending() has dropped.
  virtual void on_spill_written(SpillBuffer& buffer) = 0;
  // A read started by read() has `len` bytes at `data`, valid until the next
  // read(), rewind() or reset().
  virtual void on_spill_read(SpillBuffer& buffer, const char* data, size_t len) = 0;
  // A failure (error() is set) is reported once: through on_spill_read with
  // len == 0 if a read was outstanding, else through on_spill_written. Only
  // running out of memory makes append() or read() fail at once, setting
  // error() without a call.

 protected:
  ~SpillOwner() = default;
};

struct SpillOptions {
  size_t memory_limit = 0;  // bytes kept in memory, counted from the start
  // Where the file is created. Must stay valid until reset(): the file is
  // opened only when the first byte past memory_limit arrives.
  std::string_view temp_dir;
  // false: mkstemp + unlink, what file systems without O_TMPFILE get.
  bool use_o_tmpfile = true;
};

class SpillBuffer {
 public:
  // File bytes read() returns at most at once.
  static constexpr size_t kReadChunk = 256 * 1024;

  SpillBuffer() = default;
  SpillBuffer(const SpillBuffer&) = delete;
  SpillBuffer& operator=(const SpillBuffer&) = delete;
  ~SpillBuffer() { reset(); }

  // Makes the buffer usable after construction or reset(); cheap, allocates
  // nothing.
  void configure(uv_loop_t* loop, SpillOwner* owner, const SpillOptions& options);
  bool configured() const { return owner_ != nullptr; }

  // Stores bytes in order: in memory while the memory part has room, then
  // into a write to the file. Never blocks. Ignored once error() is set.
  void append(const char* data, size_t len);
  void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }

  // Everything appended since reset(), memory and file parts.
  uint64_t size() const { return memory_.size() + file_size_; }
  std::string_view memory() const { return memory_; }
  uint64_t file_size() const { return file_size_; }
  // Bytes appended for the file that it does not hold yet.
  size_t pending() const { return staged_.size() + writing_; }
  // The first failure (a libuv error code), 0 if none. Sticky until reset().
  int error() const { return error_; }

  // Reading the file part. read() asks for the next bytes at the read
  // position, at most `max` (and kReadChunk); on_spill_read() brings them
  // and moves the position on. Bytes still pending are read once written.
  // Returns false, and starts nothing, when the position is at the end, a
  // read is already outstanding, or error() is set.
  bool read(size_t max = kReadChunk);
  bool reading() const { return read_wanted_ > 0 || (read_in_flight_ && !read_stale_); }
  uint64_t read_position() const { return read_pos_; }
  uint64_t unread() const { return file_size_ - read_pos_; }
  // Back to the first file byte, for a replay. An outstanding read is
  // dropped: the owner hears nothing of it.
  void rewind();
  // Once everything is read: forget it and reuse the file from its start,
  // so a long stream consumed as it arrives needs only the file space of
  // what is waiting. Returns false (and does nothing) if something is unread
  // or I/O is in flight.
  bool discard_read();

  // Forgets the content, closes the file (asynchronously) and frees every
  // buffer except the memory part, whose capacity is kept for the next use.
  void reset();

  // Operations of all buffers on this thread that have not completed: for
  // tests and leak checks.
  static size_t operations_in_flight();

  struct File;  // the descriptor, shared by the operations using it
  struct Op;    // one uv_fs_t and its bytes

 private:
  void open_file();
  void start_write();
  void start_read();
  void fail(int err);
  void on_opened(int fd_or_error);
  void on_write_done(ssize_t result);
  void on_read_done(ssize_t result);
  static void opened_cb(uv_fs_t* req);
  static void written_cb(uv_fs_t* req);
  static void read_cb(uv_fs_t* req);

  uv_loop_t* loop_ = nullptr;
  SpillOwner* owner_ = nullptr;
  SpillOptions options_;

  std::string memory_;      // the first bytes; capacity kept across reset()
  std::string staged_;      // file bytes waiting for the next write
  uint64_t file_size_ = 0;  // file bytes appended (written, writing or staged)
  uint64_t written_ = 0;    // file bytes the file holds
  size_t writing_ = 0;      // bytes of the write in flight
  uint64_t read_pos_ = 0;
  size_t read_wanted_ = 0;  // a read() not started yet (bytes unwritten, or a stale read in flight)
  bool read_in_flight_ = false;
  bool read_stale_ = false;  // the read in flight was dropped by rewind()
  int error_ = 0;

  File* file_ = nullptr;  // null until the open succeeds
  Op* open_op_ = nullptr;
  Op* write_op_ = nullptr;
  Op* read_op_ = nullptr;
};

}  // namespace sluice::proxy
