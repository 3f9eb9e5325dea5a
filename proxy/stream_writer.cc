#include "proxy/stream_writer.h"

#include "core/free_list.h"
#include "proxy/socket_writer.h"

namespace sluice::proxy {

struct StreamWriter::Req {
  uv_write_t req;
  StreamWriter* writer;
  std::string bytes;
};

namespace {
// Loop thread only. Requests keep their string's capacity across uses.
thread_local FreeList<StreamWriter::Req, 1024> free_reqs;
}  // namespace

int StreamWriter::write(uv_stream_t* stream, const uv_buf_t* bufs, unsigned nbufs) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; ++i) total += bufs[i].len;
  if (total == 0) return 0;

  size_t written = 0;
  if (queued_ == 0) {
    int n = uv_try_write(stream, bufs, nbufs);
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) return n;
    if (n > 0) written = static_cast<size_t>(n);
    if (written == total) return 0;
  }

  Req* r = free_reqs.take();
  r->writer = this;
  r->bytes.clear();
  r->bytes.reserve(total - written);
  append_unsent(r->bytes, bufs, nbufs, written);
  uv_buf_t b = uv_buf_init(r->bytes.data(), static_cast<unsigned>(r->bytes.size()));
  int rc = uv_write(&r->req, stream, &b, 1, &StreamWriter::on_written);
  if (rc != 0) {
    // A write that fails synchronously never runs its callback.
    delete r;
    return rc;
  }
  queued_ += r->bytes.size();
  return 0;
}

void StreamWriter::on_written(uv_write_t* req, int status) {
  Req* r = reinterpret_cast<Req*>(req);
  StreamWriter* w = r->writer;
  w->queued_ -= r->bytes.size();
  if (r->bytes.capacity() <= 256 * 1024) free_reqs.give(r);
  else delete r;
  w->done_(w->owner_, status);
}

}  // namespace sluice::proxy
