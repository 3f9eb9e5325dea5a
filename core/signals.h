// Process signals, delivered on the loop thread (libuv turns them into
// ordinary callbacks), so handlers may touch loop-owned state freely.
#pragma once

#include <uv.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice {

class SignalWatcher {
 public:
  using Handler = std::function<void(int signum)>;

  // Watches each of `signals`; `handler` runs on the loop thread.
  static Result<std::unique_ptr<SignalWatcher>> create(uv_loop_t* loop,
                                                       std::initializer_list<int> signals,
                                                       Handler handler);

  // Stops watching; the default dispositions apply again.
  void close();

 private:
  explicit SignalWatcher(Handler handler) : handler_(std::move(handler)) {}
  static void on_signal(uv_signal_t* h, int signum);

  Handler handler_;
  std::vector<UvHandle<uv_signal_t>> handles_;
};

// Writes to a peer that has gone must fail with EPIPE, not kill the daemon.
void ignore_sigpipe();

}  // namespace sluice
