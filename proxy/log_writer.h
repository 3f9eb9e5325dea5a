// A bounded hand-off of log lines from one producing thread (the event
// loop) to a writer thread of its own. The producer writes each line
// straight into a byte ring allocated once, so a line costs no allocation
// whatever its length; the writer appends everything queued to the file
// descriptor with one writev per batch. The producer never waits for the
// disk: a line that does not fit in the ring's free space is dropped (the
// newest line, not the queued ones) and counted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/result.h"

namespace sluice::proxy {

class LogWriter {
 public:
  // About 14,000 json or 26,000 combined access-log lines.
  static constexpr size_t kDefaultCapacity = size_t{4} << 20;

  // Appends to `path` (created if missing); reopen() opens it again by name.
  // `capacity` is rounded up to a power of two.
  static Result<std::unique_ptr<LogWriter>> open_file(const std::string& path,
                                                      size_t capacity = kDefaultCapacity);
  // Standard output, in writes of whole lines of at most PIPE_BUF bytes
  // (unless one line is longer); reopen() does nothing.
  static std::unique_ptr<LogWriter> open_stdout(size_t capacity = kDefaultCapacity);

  // Writes out everything queued, then joins the writer: replacing a log on
  // reload loses none of its lines. Blocks while the writer drains, so the
  // event loop calls stop() first and destroys the writer once finished().
  ~LogWriter();

  // No more lines come: the writer writes out what is queued and exits. Does
  // not wait for it (the disk may be slow). Producer thread; idempotent.
  void stop();
  // The writer has written everything and exited: destroying it is instant.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // One line being formatted in place in the ring's free space. Bytes past
  // that space are not stored, only counted, and make commit() drop the line.
  class Line {
   public:
    void push_back(char c) {
      if (len_ < room_) ring_[(start_ + len_) & mask_] = c;
      ++len_;
    }
    void append(std::string_view s) {
      if (s.empty()) return;  // its data() may be null, which memcpy must not see
      if (len_ + s.size() <= room_) copy_in(s);
      len_ += s.size();
    }
    size_t size() const { return len_; }

   private:
    friend class LogWriter;
    Line(char* ring, uint64_t mask, uint64_t start, uint64_t room)
        : ring_(ring), mask_(mask), start_(start), room_(room) {}
    void copy_in(std::string_view s) {
      const uint64_t at = (start_ + len_) & mask_;
      const size_t first = s.size() < mask_ + 1 - at ? s.size() : mask_ + 1 - at;
      std::memcpy(ring_ + at, s.data(), first);
      if (first < s.size()) std::memcpy(ring_, s.data() + first, s.size() - first);  // wrapped
    }

    char* ring_;
    uint64_t mask_;
    uint64_t start_;
    uint64_t len_ = 0;
    uint64_t room_;
  };

  // Producer side: one thread only (the one that destroys the writer, too).
  // Nothing written into a Line is visible to the writer before commit(),
  // which adds the newline.
  Line begin_line();
  void commit(const Line& line);

  // The file is reopened by name before the writer's next write (SIGUSR1,
  // after logrotate moved it). If that fails the old file is kept.
  void reopen();

  // Lines lost: no room in the ring, or a failed write.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Write system calls so far (each carries a whole batch of lines).
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }
  // Bytes committed but not yet written.
  size_t queued_bytes() const;
  size_t capacity() const { return capacity_; }

 private:
  LogWriter(int fd, std::string path, size_t capacity);
  void run();
  void write_out(uint64_t from, uint64_t to);
  uint64_t stdout_chunk_end(uint64_t from, uint64_t to) const;
  void reopen_file();

  const size_t capacity_;
  const uint64_t mask_;
  std::unique_ptr<char[]> ring_;
  // Byte positions that only grow: the producer owns head_, the writer
  // tail_; the ring holds [tail_, head_).
  std::atomic<uint64_t> head_{0};
  std::atomic<uint64_t> tail_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> writes_{0};

  // The writer sleeps on cv_ only when the ring is empty, and says so in
  // sleeping_, so the producer takes mu_ only to wake it, not per line.
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> reopen_{false};
  std::atomic<bool> finished_{false};

  // Used by the writer thread only once it runs.
  int fd_;
  const std::string path_;  // empty: standard output, never reopened or closed
  bool failing_ = false;    // the last write failed (reported once)

  std::thread thread_;
};

}  // namespace sluice::proxy
