// Work posted to a loop from other threads: the loop runs each task on its
// own thread, in the order posted. For what happens rarely between loops
// (io_threads: a reload, a shutdown, an admin scrape), not per request:
// each task is a std::function.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice {

class LoopTasks {
 public:
  using Task = std::function<void()>;

  // On the loop's thread. While it is open it keeps the loop running.
  static Result<std::unique_ptr<LoopTasks>> create(uv_loop_t* loop);
  LoopTasks(const LoopTasks&) = delete;
  LoopTasks& operator=(const LoopTasks&) = delete;

  // Any thread. False (and the task is dropped) after close().
  bool post(Task task);
  // The loop's thread: tasks already posted run now, none is accepted
  // after, and the loop may end.
  void close();

 private:
  LoopTasks() = default;
  static void on_async(uv_async_t* h);
  void run();

  std::mutex mu_;
  std::vector<Task> tasks_;
  bool closed_ = false;
  UvHandle<uv_async_t> async_;
};

}  // namespace sluice
