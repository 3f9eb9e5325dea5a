#include "proxy/spill_buffer.h"

#include <fcntl.h>

#include <algorithm>
#include <utility>

namespace sluice::proxy {

namespace {
// Loop thread only, like every buffer.
thread_local size_t ops_in_flight = 0;

enum class OpenStage : uint8_t { Tmpfile, Mkstemp, Unlink };
}  // namespace

// The descriptor outlives the buffer while an orphaned write or read still
// uses it: closing it earlier could let the number be reused under them.
struct SpillBuffer::File {
  uv_loop_t* loop;
  uv_file fd;
  int refs = 1;
};

struct SpillBuffer::Op {
  uv_fs_t req{};
  SpillBuffer* buffer;   // null once reset() orphaned it: it then only cleans up
  File* file = nullptr;  // a reference held while a write or read uses the descriptor
  std::string bytes;     // what a write writes, or where a read reads to
  size_t done = 0;       // bytes of a write that are written (short writes go on)
  uint64_t offset = 0;
  bool busy = false;
  // Opening only.
  OpenStage stage = OpenStage::Tmpfile;
  std::string path;
  uv_file fd = -1;

  explicit Op(SpillBuffer* b) : buffer(b) { req.data = this; }
};

namespace {

struct CloseReq {
  uv_fs_t req{};
};

void closed_cb(uv_fs_t* req) {
  --ops_in_flight;
  uv_fs_req_cleanup(req);
  delete reinterpret_cast<CloseReq*>(req);
}

void close_fd(uv_loop_t* loop, uv_file fd) {
  auto* c = new CloseReq;
  if (uv_fs_close(loop, &c->req, fd, closed_cb) != 0) {
    delete c;  // cannot even be queued: nothing more to do
    return;
  }
  ++ops_in_flight;
}

}  // namespace

size_t SpillBuffer::operations_in_flight() { return ops_in_flight; }

static void release_file(SpillBuffer::File* f) {
  if (--f->refs > 0) return;
  close_fd(f->loop, f->fd);
  delete f;
}

void SpillBuffer::configure(uv_loop_t* loop, SpillOwner* owner, const SpillOptions& options) {
  loop_ = loop;
  owner_ = owner;
  options_ = options;
}

void SpillBuffer::append(const char* data, size_t len) {
  if (error_ != 0 || len == 0) return;
  if (file_size_ == 0 && memory_.size() < options_.memory_limit) {
    size_t take = std::min(len, options_.memory_limit - memory_.size());
    memory_.append(data, take);
    data += take;
    len -= take;
    if (len == 0) return;
  }
  staged_.append(data, len);
  file_size_ += len;
  if (file_ == nullptr) {
    if (open_op_ == nullptr) open_file();
    return;
  }
  if (writing_ == 0) start_write();
}

// --- opening -----------------------------------------------------------------

void SpillBuffer::open_file() {
  open_op_ = new Op(this);
  Op* op = open_op_;
  op->busy = true;
  int rc;
  if (options_.use_o_tmpfile) {
    op->stage = OpenStage::Tmpfile;
    op->path.assign(options_.temp_dir);
    rc = uv_fs_open(loop_, &op->req, op->path.c_str(), O_TMPFILE | O_RDWR, 0600, opened_cb);
  } else {
    op->stage = OpenStage::Mkstemp;
    op->path.assign(options_.temp_dir).append("/sluice-spill-XXXXXX");
    rc = uv_fs_mkstemp(loop_, &op->req, op->path.c_str(), opened_cb);
  }
  if (rc != 0) {
    // Only out of memory gets here: no callback will come.
    delete op;
    open_op_ = nullptr;
    error_ = rc;
    staged_.clear();
    return;
  }
  ++ops_in_flight;
}

// Runs each step of the open: O_TMPFILE, or mkstemp then unlink. An
// orphaned open goes on to the unlink all the same, so a file made by
// mkstemp never stays in the directory, and then closes what it opened.
void SpillBuffer::opened_cb(uv_fs_t* req) {
  --ops_in_flight;
  auto* op = static_cast<Op*>(req->data);
  ssize_t result = req->result;
  if (op->stage == OpenStage::Mkstemp && result >= 0) op->path.assign(req->path);
  uv_fs_req_cleanup(req);

  int error = 0;
  switch (op->stage) {
    case OpenStage::Tmpfile:
      if (result >= 0) {
        op->fd = static_cast<uv_file>(result);
        break;
      }
      // File systems without O_TMPFILE say EOPNOTSUPP (UV_ENOTSUP); kernels that do not
      // know it see a directory opened for writing (EISDIR).
      if ((result == UV_ENOTSUP || result == UV_EISDIR || result == UV_EINVAL) &&
          op->buffer != nullptr) {
        op->stage = OpenStage::Mkstemp;
        op->path.append("/sluice-spill-XXXXXX");
        if (uv_fs_mkstemp(req->loop, &op->req, op->path.c_str(), opened_cb) == 0) {
          ++ops_in_flight;
          return;
        }
      }
      error = static_cast<int>(result);
      break;
    case OpenStage::Mkstemp:
      if (result < 0) {
        error = static_cast<int>(result);
        break;
      }
      op->fd = static_cast<uv_file>(result);
      op->stage = OpenStage::Unlink;
      if (uv_fs_unlink(req->loop, &op->req, op->path.c_str(), opened_cb) == 0) {
        ++ops_in_flight;
        return;
      }
      error = UV_EIO;
      break;
    case OpenStage::Unlink:
      if (result < 0) error = static_cast<int>(result);
      break;
  }

  SpillBuffer* self = op->buffer;
  uv_loop_t* loop = req->loop;
  uv_file fd = op->fd;
  delete op;
  if (self == nullptr || error != 0) {
    if (fd >= 0) close_fd(loop, fd);
    if (self != nullptr) {
      self->open_op_ = nullptr;
      self->fail(error);
    }
    return;
  }
  self->open_op_ = nullptr;
  self->on_opened(fd);
}

void SpillBuffer::on_opened(uv_file fd) {
  file_ = new File{loop_, fd};
  if (!staged_.empty()) start_write();
}

// --- writing -----------------------------------------------------------------

void SpillBuffer::start_write() {
  if (write_op_ == nullptr) write_op_ = new Op(this);
  Op* op = write_op_;
  // The staged bytes become the write's, and the write's old (empty)
  // string collects the next ones: two buffers in turn, no copy.
  op->bytes.clear();
  std::swap(op->bytes, staged_);
  op->done = 0;
  op->offset = written_;
  op->busy = true;
  op->file = file_;
  ++file_->refs;
  writing_ = op->bytes.size();
  uv_buf_t b = uv_buf_init(op->bytes.data(), static_cast<unsigned>(op->bytes.size()));
  int rc = uv_fs_write(loop_, &op->req, file_->fd, &b, 1, static_cast<int64_t>(op->offset), written_cb);
  if (rc != 0) {
    // Only out of memory gets here: no callback will come.
    op->busy = false;
    release_file(op->file);
    op->file = nullptr;
    writing_ = 0;
    error_ = rc;
    staged_.clear();
    return;
  }
  ++ops_in_flight;
}

void SpillBuffer::written_cb(uv_fs_t* req) {
  --ops_in_flight;
  auto* op = static_cast<Op*>(req->data);
  ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  SpillBuffer* self = op->buffer;
  if (self != nullptr && result > 0 && op->done + static_cast<size_t>(result) < op->bytes.size()) {
    // A short write: the rest goes on from where it stopped.
    op->done += static_cast<size_t>(result);
    uv_buf_t b = uv_buf_init(op->bytes.data() + op->done,
                             static_cast<unsigned>(op->bytes.size() - op->done));
    if (uv_fs_write(self->loop_, &op->req, op->file->fd, &b, 1,
                    static_cast<int64_t>(op->offset + op->done), written_cb) == 0) {
      ++ops_in_flight;
      return;
    }
    result = UV_EIO;
  }
  release_file(op->file);
  op->file = nullptr;
  op->busy = false;
  if (self == nullptr) {
    delete op;
    return;
  }
  self->on_write_done(result);
}

void SpillBuffer::on_write_done(ssize_t result) {
  if (error_ != 0) return;  // a read failed meanwhile and was reported
  if (result <= 0) {
    fail(result < 0 ? static_cast<int>(result) : UV_EIO);
    return;
  }
  written_ += writing_;
  writing_ = 0;
  if (!staged_.empty()) start_write();
  if (read_wanted_ > 0 && !read_in_flight_ && written_ > read_pos_) start_read();
  owner_->on_spill_written(*this);  // may reset or free us: nothing after it
}

// --- reading -----------------------------------------------------------------

bool SpillBuffer::read(size_t max) {
  if (error_ != 0 || read_pos_ >= file_size_ || max == 0 || reading()) return false;
  read_wanted_ = std::min(max, kReadChunk);
  if (!read_in_flight_ && written_ > read_pos_) start_read();
  return true;
}

void SpillBuffer::start_read() {
  if (read_op_ == nullptr) read_op_ = new Op(this);
  Op* op = read_op_;
  size_t n = static_cast<size_t>(std::min<uint64_t>(read_wanted_, written_ - read_pos_));
  read_wanted_ = 0;
  if (op->bytes.size() < kReadChunk) op->bytes.resize(kReadChunk);
  op->offset = read_pos_;
  op->busy = true;
  op->file = file_;
  ++file_->refs;
  read_in_flight_ = true;
  uv_buf_t b = uv_buf_init(op->bytes.data(), static_cast<unsigned>(n));
  int rc = uv_fs_read(loop_, &op->req, file_->fd, &b, 1, static_cast<int64_t>(op->offset), read_cb);
  if (rc != 0) {
    op->busy = false;
    release_file(op->file);
    op->file = nullptr;
    read_in_flight_ = false;
    error_ = rc;
    return;
  }
  ++ops_in_flight;
}

void SpillBuffer::read_cb(uv_fs_t* req) {
  --ops_in_flight;
  auto* op = static_cast<Op*>(req->data);
  ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  release_file(op->file);
  op->file = nullptr;
  op->busy = false;
  if (op->buffer == nullptr) {
    delete op;
    return;
  }
  op->buffer->on_read_done(result);
}

void SpillBuffer::on_read_done(ssize_t result) {
  read_in_flight_ = false;
  if (error_ != 0) return;  // a write failed meanwhile and was reported
  if (read_stale_) {
    read_stale_ = false;
    if (read_wanted_ > 0 && written_ > read_pos_) start_read();
    return;
  }
  if (result <= 0) {
    // The bytes were written, so end of file here means the file is broken.
    read_wanted_ = 1;  // so that fail() reports through on_spill_read
    fail(result < 0 ? static_cast<int>(result) : UV_EIO);
    return;
  }
  read_pos_ += static_cast<uint64_t>(result);
  owner_->on_spill_read(*this, read_op_->bytes.data(), static_cast<size_t>(result));
}

void SpillBuffer::rewind() {
  read_pos_ = 0;
  read_wanted_ = 0;
  if (read_in_flight_) read_stale_ = true;
}

bool SpillBuffer::discard_read() {
  if (read_pos_ != file_size_ || writing_ > 0 || !staged_.empty() || read_in_flight_) return false;
  file_size_ = written_ = read_pos_ = 0;
  return true;
}

// --- failure and reset ----------------------------------------------------------

void SpillBuffer::fail(int err) {
  bool was_reading = read_wanted_ > 0 || (read_in_flight_ && !read_stale_);
  error_ = err;
  read_wanted_ = 0;
  staged_.clear();
  writing_ = 0;
  if (was_reading) owner_->on_spill_read(*this, nullptr, 0);
  else owner_->on_spill_written(*this);
}

void SpillBuffer::reset() {
  memory_.clear();
  std::string().swap(staged_);
  file_size_ = written_ = 0;
  writing_ = 0;
  read_pos_ = 0;
  read_wanted_ = 0;
  read_in_flight_ = read_stale_ = false;
  error_ = 0;
  for (Op** slot : {&open_op_, &write_op_, &read_op_}) {
    Op* op = *slot;
    if (op == nullptr) continue;
    if (op->busy) op->buffer = nullptr;  // finishes on its own, then frees itself
    else delete op;
    *slot = nullptr;
  }
  if (file_ != nullptr) {
    release_file(file_);
    file_ = nullptr;
  }
  owner_ = nullptr;
}

}  // namespace sluice::proxy
