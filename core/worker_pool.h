// A fixed pool of worker threads for CPU work (routing, transformation) that
// must not run on the loop thread, separate from libuv's shared threadpool
// (which also runs DNS and file I/O, and would let one starve the other).
//
// Jobs and results are plain values: a worker never sees a libuv type or a
// connection. Results come back to the loop through one uv_async_t; libuv
// coalesces wake-ups, and the loop callback drains every ready result, so a
// burst of N jobs costs far fewer than N wake-ups.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice {

struct WorkerPoolStats {
  uint64_t submitted = 0;
  uint64_t rejected = 0;   // queue full or stopped
  uint64_t delivered = 0;  // results handed to the loop
  uint64_t wakeups = 0;    // async callbacks that found results
};

template <class Job, class Out>
class WorkerPool {
 public:
  // Runs on a worker thread; must be safe to call concurrently.
  using Work = std::function<Out(Job&)>;
  // Runs on the loop thread, once per result, in completion order.
  using Deliver = std::function<void(Out&&)>;

  struct Options {
    unsigned threads = 1;
    size_t queue_capacity = 4096;  // jobs waiting for a thread; full -> reject
  };

  static Result<std::unique_ptr<WorkerPool>> create(uv_loop_t* loop, Options opts, Work work,
                                                    Deliver deliver) {
    std::unique_ptr<WorkerPool> pool(new WorkerPool(opts, std::move(work), std::move(deliver)));
    auto wake = UvHandle<uv_async_t>::create(uv_async_init, loop, &WorkerPool::on_wake);
    if (!wake) return unexpected("worker pool: " + wake.error());
    pool->wake_ = std::move(wake).value();
    pool->wake_->data = pool.get();
    pool->start();
    return pool;
  }

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool() { stop(); }

  // Loop thread. Returns false, leaving `job` untouched, when the queue is
  // full (the caller sheds the request) or the pool is stopping.
  bool try_submit(Job& job) {
    {
      std::lock_guard lock(jobs_mu_);
      if (stopping_ || jobs_count_ == jobs_.size()) {
        ++stats_.rejected;
        return false;
      }
      jobs_[(jobs_head_ + jobs_count_) % jobs_.size()] = std::move(job);
      ++jobs_count_;
    }
    ++stats_.submitted;
    jobs_cv_.notify_one();
    return true;
  }

  // Loop thread. Joins the workers; jobs not started and results not yet
  // delivered are dropped. Called once the daemon has drained its requests,
  // so the join waits at most for jobs already running.
  void stop() {
    {
      std::lock_guard lock(jobs_mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    jobs_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    wake_.close();
  }

  // Loop thread.
  const WorkerPoolStats& stats() const { return stats_; }
  unsigned threads() const { return opts_.threads; }

 private:
  WorkerPool(Options opts, Work work, Deliver deliver)
      : opts_(opts), work_(std::move(work)), deliver_(std::move(deliver)) {
    if (opts_.threads == 0) opts_.threads = 1;
    if (opts_.queue_capacity == 0) opts_.queue_capacity = 1;
    jobs_.resize(opts_.queue_capacity);
  }

  void start() {
    threads_.reserve(opts_.threads);
    for (unsigned i = 0; i < opts_.threads; ++i) threads_.emplace_back([this] { run(); });
  }

  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(jobs_mu_);
        jobs_cv_.wait(lock, [this] { return stopping_ || jobs_count_ > 0; });
        if (stopping_) return;
        job = std::move(jobs_[jobs_head_]);
        jobs_head_ = (jobs_head_ + 1) % jobs_.size();
        --jobs_count_;
      }
      Out out = work_(job);
      bool was_empty;
      {
        std::lock_guard lock(ready_mu_);
        was_empty = ready_.empty();
        ready_.push_back(std::move(out));
      }
      // A non-empty list already has a wake-up on its way that will drain
      // this result too.
      if (was_empty) uv_async_send(wake_.get());
    }
  }

  static void on_wake(uv_async_t* h) {
    auto* self = static_cast<WorkerPool*>(h->data);
    if (self == nullptr) return;
    {
      std::lock_guard lock(self->ready_mu_);
      self->draining_.swap(self->ready_);
    }
    if (self->draining_.empty()) return;
    ++self->stats_.wakeups;
    self->stats_.delivered += self->draining_.size();
    for (auto& out : self->draining_) self->deliver_(std::move(out));
    // clear() keeps the capacity: steady state allocates nothing here.
    self->draining_.clear();
  }

  Options opts_;
  Work work_;
  Deliver deliver_;

  // Guarded by jobs_mu_: a fixed ring, so submitting allocates nothing.
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::vector<Job> jobs_;
  size_t jobs_head_ = 0;
  size_t jobs_count_ = 0;
  bool stopping_ = false;

  // Guarded by ready_mu_.
  std::mutex ready_mu_;
  std::vector<Out> ready_;

  // Loop thread only.
  std::vector<Out> draining_;
  WorkerPoolStats stats_;
  UvHandle<uv_async_t> wake_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice
