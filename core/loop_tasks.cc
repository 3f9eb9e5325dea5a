#include "core/loop_tasks.h"

#include <utility>

namespace sluice {

Result<std::unique_ptr<LoopTasks>> LoopTasks::create(uv_loop_t* loop) {
  std::unique_ptr<LoopTasks> t(new LoopTasks());
  auto async = UvHandle<uv_async_t>::create(uv_async_init, loop, &LoopTasks::on_async);
  if (!async) return unexpected("loop tasks: " + async.error());
  t->async_ = std::move(async).value();
  t->async_->data = t.get();
  return t;
}

bool LoopTasks::post(Task task) {
  std::lock_guard lock(mu_);
  if (closed_) return false;
  tasks_.push_back(std::move(task));
  // Under the lock: close() on the loop's thread cannot free the handle
  // between the check above and the send.
  uv_async_send(async_.get());
  return true;
}

void LoopTasks::close() {
  std::vector<Task> left;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    left.swap(tasks_);
    async_.close();
  }
  // Whoever posted them was told they would run.
  for (auto& task : left) task();
}

void LoopTasks::on_async(uv_async_t* h) {
  if (auto* self = static_cast<LoopTasks*>(h->data)) self->run();
}

void LoopTasks::run() {
  std::vector<Task> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(tasks_);
  }
  for (auto& task : batch) task();
}

}  // namespace sluice
