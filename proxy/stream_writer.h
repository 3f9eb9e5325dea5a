// Ordered writes to one libuv stream. Each write tries uv_try_write first;
// whatever the kernel does not take at once is copied into a request that
// owns its bytes, so callers may reuse their buffers as soon as write()
// returns. Copies happen only under backpressure.
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>

namespace sluice::proxy {

class StreamWriter {
 public:
  // Called on the loop thread when a queued write finishes (status 0) or
  // fails (libuv error; UV_ECANCELED when the stream was closed).
  using DoneCb = void (*)(void* owner, int status);

  StreamWriter(void* owner, DoneCb done) : owner_(owner), done_(done) {}

  // Returns 0 or a libuv error (the stream is then unusable).
  int write(uv_stream_t* stream, const uv_buf_t* bufs, unsigned nbufs);
  int write(uv_stream_t* stream, std::string_view bytes) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
    return write(stream, &b, 1);
  }

  // Bytes accepted by write() that the kernel has not taken yet.
  size_t queued() const { return queued_; }

  struct Req;  // a queued write and its bytes (defined in the .cc)

 private:
  static void on_written(uv_write_t* req, int status);

  void* owner_;
  DoneCb done_;
  size_t queued_ = 0;
};

}  // namespace sluice::proxy
