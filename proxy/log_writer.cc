#include "proxy/log_writer.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>

namespace sluice::proxy {

namespace {

// After a batch the writer lets lines gather this long before looking
// again: under load that makes one writev per millisecond instead of one
// per line, and the producer rarely finds the writer asleep and has to
// wake it. A line waits at most this long (plus the write) once committed.
constexpr auto kGather = std::chrono::milliseconds(1);

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
}

}  // namespace

Result<std::unique_ptr<LogWriter>> LogWriter::open_file(const std::string& path,
                                                        size_t capacity) {
  int fd = open_append(path);
  if (fd < 0) return unexpected(path + ": " + std::strerror(errno));
  return std::unique_ptr<LogWriter>(new LogWriter(fd, path, capacity));
}

std::unique_ptr<LogWriter> LogWriter::open_stdout(size_t capacity) {
  return std::unique_ptr<LogWriter>(new LogWriter(STDOUT_FILENO, std::string(), capacity));
}

LogWriter::LogWriter(int fd, std::string path, size_t capacity)
    : capacity_(std::bit_ceil(std::max<size_t>(capacity, 64))),
      mask_(capacity_ - 1),
      ring_(new char[capacity_]),
      fd_(fd),
      path_(std::move(path)),
      thread_([this] { run(); }) {
  pthread_setname_np(thread_.native_handle(), "access-log");
}

LogWriter::~LogWriter() {
  stop();
  thread_.join();
  if (!path_.empty()) ::close(fd_);
}

void LogWriter::stop() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_one();
}

LogWriter::Line LogWriter::begin_line() {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  // Acquire: the writer is done reading the bytes it released.
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  return Line(ring_.get(), mask_, head, capacity_ - (head - tail));
}

void LogWriter::commit(const Line& line) {
  if (line.len_ + 1 > line.room_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ring_[(line.start_ + line.len_) & mask_] = '\n';
  // Sequentially consistent with sleeping_, against the writer's store to
  // sleeping_ and load of head_: either it sees this line before it sleeps,
  // or this thread sees it asleep and wakes it.
  head_.store(line.start_ + line.len_ + 1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst)) {
    std::lock_guard lock(mu_);
    cv_.notify_one();
  }
}

void LogWriter::reopen() {
  {
    std::lock_guard lock(mu_);
    reopen_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_one();
}

size_t LogWriter::queued_bytes() const {
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  return static_cast<size_t>(head_.load(std::memory_order_acquire) - tail);
}

void LogWriter::run() {
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  for (;;) {
    if (reopen_.exchange(false, std::memory_order_relaxed)) reopen_file();
    // stop_ before head_: the producer's last commit precedes stop_, so a
    // writer that sees stop_ also sees every line.
    const bool stopping = stop_.load(std::memory_order_acquire);
    const uint64_t head = head_.load(std::memory_order_acquire);
    if (head != tail) {
      write_out(tail, head);
      tail_.store(head, std::memory_order_release);
      // A big batch means the producer is gaining on us: no pause then.
      const bool big = head - tail >= capacity_ / 4;
      tail = head;
      if (!stopping && !big) std::this_thread::sleep_for(kGather);
      continue;
    }
    if (stopping) {
      finished_.store(true, std::memory_order_release);
      return;
    }
    std::unique_lock lock(mu_);
    sleeping_.store(true, std::memory_order_seq_cst);
    cv_.wait(lock, [&] {
      return head_.load(std::memory_order_seq_cst) != tail ||
             stop_.load(std::memory_order_relaxed) || reopen_.load(std::memory_order_relaxed);
    });
    sleeping_.store(false, std::memory_order_relaxed);
  }
}

void LogWriter::write_out(uint64_t from, uint64_t to) {
  while (from != to) {
    const uint64_t at = from & mask_;
    const uint64_t end = path_.empty() ? stdout_chunk_end(from, to) : to;
    const size_t len = static_cast<size_t>(end - from);
    const size_t first = std::min<size_t>(len, capacity_ - at);
    iovec iov[2] = {{ring_.get() + at, first}, {ring_.get(), len - first}};
    ssize_t n = ::writev(fd_, iov, first == len ? 1 : 2);
    if (n > 0) {
      writes_.fetch_add(1, std::memory_order_relaxed);
      from += static_cast<uint64_t>(n);
      if (failing_) spdlog::info("access log: writing again");
      failing_ = false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Someone made standard output non-blocking; this thread may wait.
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    // Disk full, a closed pipe...: these lines are lost; later ones may fare better.
    const int err = n < 0 ? errno : EIO;
    uint64_t lost = 0;
    for (uint64_t i = from; i != to; ++i) lost += ring_[i & mask_] == '\n';
    dropped_.fetch_add(lost, std::memory_order_relaxed);
    if (!failing_) {
      spdlog::error("access log: {}: {}; dropping lines until writing works again",
                    path_.empty() ? "stdout" : path_, std::strerror(err));
    }
    failing_ = true;
    return;
  }
}

// Standard output is often a pipe, or the journal's socket, shared with the
// error log on stderr: a write of whole lines of at most PIPE_BUF bytes is
// atomic on a pipe (and in practice on the socket), so an error-log line
// never lands inside an access-log line.
uint64_t LogWriter::stdout_chunk_end(uint64_t from, uint64_t to) const {
  if (to - from <= PIPE_BUF) return to;
  for (uint64_t end = from + PIPE_BUF; end > from; --end) {
    if (ring_[(end - 1) & mask_] == '\n') return end;
  }
  // One line longer than PIPE_BUF goes alone.
  for (uint64_t end = from + PIPE_BUF; end < to; ++end) {
    if (ring_[end & mask_] == '\n') return end + 1;
  }
  return to;
}

void LogWriter::reopen_file() {
  if (path_.empty()) return;
  int fd = open_append(path_);
  if (fd < 0) {
    spdlog::error("access log: reopening {}: {}; still writing to the old file", path_,
                  std::strerror(errno));
    return;
  }
  ::close(fd_);
  fd_ = fd;
}

}  // namespace sluice::proxy
