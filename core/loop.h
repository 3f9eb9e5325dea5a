// The event loop sluice runs on: one per process, owned by main().
#pragma once

#include <uv.h>

#include <cstddef>

namespace sluice {

class Loop {
 public:
  Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  // Runs pending close callbacks and closes the loop. A handle still open at
  // this point is a leak; the destructor aborts in debug builds.
  ~Loop();

  uv_loop_t* get() { return &loop_; }

  // Runs until no active handle is left or stop() is called.
  int run() { return uv_run(&loop_, UV_RUN_DEFAULT); }
  void stop() { uv_stop(&loop_); }

  // Lets every closing handle finish, then closes the loop. Returns
  // uv_loop_close()'s result: UV_EBUSY means some handle was never closed.
  int close();

 private:
  size_t closing_handles();

  uv_loop_t loop_{};
  bool closed_ = false;
};

}  // namespace sluice
