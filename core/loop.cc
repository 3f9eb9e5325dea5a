#include "core/loop.h"

#include <cassert>
#include <cstdio>
#include <cstdlib>

namespace sluice {

Loop::Loop() {
  int rc = uv_loop_init(&loop_);
  if (rc != 0) {
    // Only fails when the process is out of descriptors or memory at start.
    std::fprintf(stderr, "sluice: uv_loop_init: %s\n", uv_strerror(rc));
    std::abort();
  }
}

Loop::~Loop() {
  [[maybe_unused]] int rc = close();
  assert(rc == 0 && "a libuv handle outlived the loop");
}

size_t Loop::closing_handles() {
  size_t n = 0;
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        if (uv_is_closing(h)) ++*static_cast<size_t*>(arg);
      },
      &n);
  return n;
}

int Loop::close() {
  if (closed_) return 0;
  // Closed handles free their memory in close callbacks, which only run
  // inside uv_run; let them finish (a close callback may close more) before
  // asking libuv to close the loop. Open handles are left alone: they are
  // the leak uv_loop_close() reports.
  while (closing_handles() > 0) uv_run(&loop_, UV_RUN_NOWAIT);
  int rc = uv_loop_close(&loop_);
  if (rc == 0) closed_ = true;
  return rc;
}

}  // namespace sluice
