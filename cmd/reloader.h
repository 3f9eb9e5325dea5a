// SIGHUP handling: the file is read, parsed, validated and its host names
// resolved on libuv's threadpool (all of that may block), and the result is
// applied on the loop. A bad file changes nothing: every error is logged
// with file:line:col and the running configuration stays.
#pragma once

#include <uv.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/load.h"
#include "core/sd_notify.h"
#include "proxy/loop_group.h"

namespace sluice {

class Reloader {
 public:
  using Applied = std::function<void(const config::ConfigPtr&)>;

  Reloader(uv_loop_t* loop, std::string path, proxy::LoopGroup& loops, SdNotifier& notifier,
           Applied applied);

  // Loop thread. A request while a load is running is remembered and run
  // after it, so the last SIGHUP always wins.
  void request();

 private:
  void start();
  static void work(uv_work_t* req);
  static void done(uv_work_t* req, int status);

  uv_loop_t* loop_;
  std::string path_;
  proxy::LoopGroup& loops_;
  size_t log_count_;  // access logs to open: one per loop
  SdNotifier& notifier_;
  Applied applied_;

  uv_work_t req_{};
  bool running_ = false;
  bool again_ = false;
  // Written by the threadpool in work(), read on the loop in done().
  std::optional<Result<config::ConfigPtr, config::ConfigErrors>> loaded_;
  std::vector<Result<std::unique_ptr<proxy::AccessLog>>> logs_;
};

}  // namespace sluice
