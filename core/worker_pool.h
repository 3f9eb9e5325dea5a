// A fixed pool of worker threads for CPU work (routing, transformation) that
// must not run on the loop thread, separate from libuv's shared threadpool
// (which also runs DNS and file I/O, and would let one starve the other).
//
// Jobs and results are plain values: a worker never sees a libuv type or a
// connection. Both directions are batched, because a thread wake-up costs
// more than routing a request: jobs submitted during one loop iteration are
// handed over under one lock with one notify (from a uv_check_t, after the
// iteration's I/O), a worker takes a batch at a time, and results come back
// through one uv_async_t whose callback drains every ready result.
//
// The loop may run jobs itself, up to an inline budget of work per
// iteration, and hand over only the rest: a futex wake-up on the way in and
// an eventfd on the way out cost more than routing a head (on 2 vCPUs they
// added 60-100 µs to each request at light load and cost 10-20 % of
// small-request throughput at 64 connections). The budget keeps a burst of
// expensive jobs from stalling the loop's I/O: past it, the workers take
// over, in parallel. A budget of 0 hands every job over.
//
// The loop runs jobs only while they are cheap: while the moving average of
// a job's cost, measured wherever jobs run, is at most 1/kInlineShare of the
// budget. With 300 regex routes (about 160 µs a head) routing on the loop
// delayed every connection's I/O behind it, raising p99 by 20-30 % and the
// latency at one connection by about 40-70 µs; such jobs now all go to the
// workers, whose measurements bring the loop back in when jobs get cheap.
//
// With a BusyPoll that is on, the loop does not sleep while traffic flows:
// a handed-over job that no worker has taken kAssistDelay later, while the
// loop is idle, is run by the loop too. Workers never spin: on a 2-CPU
// machine a spinning worker took the CPU the app and the client needed and
// tripled the latency it was meant to cut.
#pragma once

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/busy_poll.h"
#include "core/result.h"
#include "core/uv_handle.h"

namespace sluice {

struct WorkerPoolStats {
  uint64_t submitted = 0;
  uint64_t rejected = 0;   // queue full or stopped
  uint64_t delivered = 0;  // results handed to the loop
  uint64_t wakeups = 0;    // async callbacks that found results
  // Jobs the loop ran itself, within its inline budget or taken back while
  // idle (counted in delivered too).
  uint64_t assisted = 0;
  // Moving average of the time one job takes to run, wherever it ran; 0
  // before the first job.
  uint64_t job_cost_ns = 0;
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
    BusyPoll* busy_poll = nullptr;   // kicked on each hand-over
    uint64_t inline_budget_ns = 0;   // jobs the loop runs itself per iteration
    // Runs first on each worker thread: sets up its scratch memory, so a
    // worker's first job allocates nothing even when the loop did all the
    // work until then.
    std::function<void()> thread_start = {};
  };

  static Result<std::unique_ptr<WorkerPool>> create(uv_loop_t* loop, Options opts, Work work,
                                                    Deliver deliver) {
    std::unique_ptr<WorkerPool> pool(new WorkerPool(opts, std::move(work), std::move(deliver)));
    auto wake = UvHandle<uv_async_t>::create(uv_async_init, loop, &WorkerPool::on_wake);
    if (!wake) return unexpected("worker pool: " + wake.error());
    pool->wake_ = std::move(wake).value();
    pool->wake_->data = pool.get();
    auto flush = UvHandle<uv_check_t>::create(uv_check_init, loop);
    if (!flush) return unexpected("worker pool: " + flush.error());
    pool->flush_ = std::move(flush).value();
    pool->flush_->data = pool.get();
    uv_check_start(pool->flush_.get(), &WorkerPool::on_flush);
    uv_unref(pool->flush_.handle());  // it must not keep the loop alive
    auto assist = UvHandle<uv_idle_t>::create(uv_idle_init, loop);
    if (!assist) return unexpected("worker pool: " + assist.error());
    pool->assist_ = std::move(assist).value();
    pool->assist_->data = pool.get();
    uv_unref(pool->assist_.handle());
    pool->start();
    return pool;
  }

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool() { stop(); }

  // Loop thread. Returns false, leaving `job` untouched, when the queue is
  // full (the caller sheds the request) or the pool is stopping. The job
  // reaches a worker at the end of this loop iteration.
  bool try_submit(Job& job) {
    if (stopped_ ||
        pending_.size() + in_ring_.load(std::memory_order_relaxed) >= opts_.queue_capacity) {
      ++stats_.rejected;
      return false;
    }
    pending_.push_back(std::move(job));
    ++stats_.submitted;
    return true;
  }

  // Loop thread. Hands the jobs submitted so far to the workers now rather
  // than at the end of the iteration (tests, shutdown).
  void flush() {
    if (pending_.empty()) return;
    if (opts_.inline_budget_ns > 0 &&
        gate_cost_ns_.load(std::memory_order_relaxed) * kInlineShare <= opts_.inline_budget_ns) {
      run_on_loop();
      if (pending_.empty()) return;
    }
    size_t n = pending_.size();
    {
      std::lock_guard lock(jobs_mu_);
      for (auto& job : pending_) {
        jobs_[(jobs_head_ + jobs_count_) % jobs_.size()] = std::move(job);
        ++jobs_count_;
      }
      in_ring_.store(jobs_count_, std::memory_order_relaxed);
    }
    pending_.clear();
    if (busy_polling()) {
      opts_.busy_poll->kick();
      handed_over_at_ = uv_hrtime();
      if (!assisting_) {
        uv_idle_start(assist_.get(), &WorkerPool::on_assist);
        assisting_ = true;
      }
    }
    // One sleeper is enough for a small batch; it wakes another if more is
    // left after taking its share.
    if (n > kBatch) jobs_cv_.notify_all();
    else jobs_cv_.notify_one();
  }

  // Loop thread. Joins the workers; jobs not started and results not yet
  // delivered are dropped. Called once the daemon has drained its requests,
  // so the join waits at most for jobs already running.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard lock(jobs_mu_);
      stopping_ = true;
    }
    jobs_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    pending_.clear();
    wake_.close();
    flush_.close();
    assist_.close();
  }

  // Loop thread. Takes effect at the next flush. Called on each reload: the
  // routes may have changed, so what a job costs is measured afresh.
  void set_inline_budget(uint64_t ns) {
    opts_.inline_budget_ns = ns;
    sample_cap_ns_.store(ns > 0 ? ns / 2 : UINT64_MAX, std::memory_order_relaxed);
    job_cost_ns_.store(0, std::memory_order_relaxed);
    gate_cost_ns_.store(0, std::memory_order_relaxed);
  }

  // Loop thread.
  WorkerPoolStats stats() const {
    WorkerPoolStats s = stats_;
    s.job_cost_ns = job_cost_ns_.load(std::memory_order_relaxed);
    return s;
  }
  unsigned threads() const { return opts_.threads; }

 private:
  WorkerPool(Options opts, Work work, Deliver deliver)
      : opts_(opts), work_(std::move(work)), deliver_(std::move(deliver)) {
    if (opts_.threads == 0) opts_.threads = 1;
    if (opts_.queue_capacity == 0) opts_.queue_capacity = 1;
    jobs_.resize(opts_.queue_capacity);
    pending_.reserve(opts_.queue_capacity);
    inline_.reserve(opts_.queue_capacity);
    // The two result lists trade places at each drain; a worker appends to
    // whichever is current. Room for a batch per worker before growing.
    ready_.reserve(kBatch * opts_.threads);
    draining_.reserve(kBatch * opts_.threads);
    set_inline_budget(opts_.inline_budget_ns);
  }

  void start() {
    threads_.reserve(opts_.threads);
    for (unsigned i = 0; i < opts_.threads; ++i) threads_.emplace_back([this] { run(); });
  }

  void run() {
    if (opts_.thread_start) opts_.thread_start();
    std::vector<Job> batch;
    std::vector<Out> outs;
    batch.reserve(kBatch);
    outs.reserve(kBatch);
    for (;;) {
      {
        std::unique_lock lock(jobs_mu_);
        jobs_cv_.wait(lock, [this] { return stopping_ || jobs_count_ > 0; });
        if (stopping_) return;
        while (jobs_count_ > 0 && batch.size() < kBatch) {
          batch.push_back(std::move(jobs_[jobs_head_]));
          jobs_head_ = (jobs_head_ + 1) % jobs_.size();
          --jobs_count_;
        }
        in_ring_.store(jobs_count_, std::memory_order_relaxed);
        if (jobs_count_ > 0) jobs_cv_.notify_one();  // more than one batch: share it
      }
      // CPU time, not wall time: a worker shares the CPUs with the app and
      // the clients and is often preempted mid-batch; wall time then read
      // as expensive routing and sent cheap jobs away from the loop (-9 %
      // req/s at 64 connections). A system call per batch, off the loop.
      const uint64_t started = thread_cpu_ns();
      for (auto& job : batch) outs.push_back(work_(job));
      note_cost((thread_cpu_ns() - started) / batch.size());
      batch.clear();
      bool was_empty;
      {
        std::lock_guard lock(ready_mu_);
        was_empty = ready_.empty();
        for (auto& out : outs) ready_.push_back(std::move(out));
      }
      outs.clear();
      // A non-empty list already has a wake-up on its way that will drain
      // these results too.
      if (was_empty) uv_async_send(wake_.get());
    }
  }

  bool busy_polling() const { return opts_.busy_poll != nullptr && opts_.busy_poll->budget_ns() > 0; }

  // Loop thread. The jobs of this iteration run right here, as many as fit
  // in the inline budget; the rest go to the workers.
  void run_on_loop() {
    inline_.swap(pending_);  // delivering may submit again, into pending_
    const uint64_t start = uv_hrtime();
    uint64_t now = start;
    size_t i = 0;
    for (; i < inline_.size() && now - start < opts_.inline_budget_ns; ++i) {
      ++stats_.assisted;
      ++stats_.delivered;
      Out out = work_(inline_[i]);
      const uint64_t done = uv_hrtime();
      note_cost(done - now);
      deliver_(std::move(out));
      now = uv_hrtime();
    }
    for (; i < inline_.size(); ++i) pending_.push_back(std::move(inline_[i]));
    inline_.clear();
    if (busy_polling()) opts_.busy_poll->kick();
  }

  // Loop thread, every iteration while jobs handed over may still be in the
  // ring (the active idle handle also keeps the loop polling).
  static void on_assist(uv_idle_t* h) {
    auto* self = static_cast<WorkerPool*>(h->data);
    if (self == nullptr) return;
    if (self->in_ring_.load(std::memory_order_relaxed) == 0) {
      uv_idle_stop(h);  // the workers took everything
      self->assisting_ = false;
      return;
    }
    if (uv_hrtime() - self->handed_over_at_ < kAssistDelay) return;
    Job job;
    {
      std::lock_guard lock(self->jobs_mu_);
      if (self->jobs_count_ == 0) return;
      job = std::move(self->jobs_[self->jobs_head_]);
      self->jobs_head_ = (self->jobs_head_ + 1) % self->jobs_.size();
      --self->jobs_count_;
      self->in_ring_.store(self->jobs_count_, std::memory_order_relaxed);
    }
    ++self->stats_.assisted;
    ++self->stats_.delivered;
    const uint64_t started = uv_hrtime();
    Out out = self->work_(job);
    self->note_cost(uv_hrtime() - started);
    self->deliver_(std::move(out));
  }

  // Any thread. An exponential moving average over about 8 samples,
  // starting from 0; a lost update between threads costs one sample, which
  // an average can spare. A sample is capped at half the budget: one slow
  // job (the first after start or reload runs on cold caches; a thread
  // preempted mid-job on 2 shared vCPUs) then moves the average by at most
  // 1/16 of the budget, not enough on its own to send jobs away from the
  // loop; three in a row are. The capped average decides; the plain one is
  // reported.
  void note_cost(uint64_t ns) {
    add_sample(job_cost_ns_, ns);
    add_sample(gate_cost_ns_, std::min(ns, sample_cap_ns_.load(std::memory_order_relaxed)));
  }
  static void add_sample(std::atomic<uint64_t>& avg, uint64_t ns) {
    const uint64_t old = avg.load(std::memory_order_relaxed);
    avg.store(old - old / 8 + ns / 8, std::memory_order_relaxed);
  }
  static uint64_t thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
  }

  static void on_flush(uv_check_t* h) {
    auto* self = static_cast<WorkerPool*>(h->data);
    if (self != nullptr) self->flush();
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

  static constexpr size_t kBatch = 32;  // jobs a worker takes at once
  // The loop runs jobs itself only while one costs at most 1/kInlineShare
  // of its budget (25 µs of the default 200): cheap enough that a burst
  // does not hold up the I/O of every other connection.
  static constexpr uint64_t kInlineShare = 8;
  // An awake worker takes a job within a microsecond or two; a sleeping one
  // takes 10-50 µs to wake on a virtual machine.
  static constexpr uint64_t kAssistDelay = 5'000;  // ns

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
  // jobs_count_ for the loop's admission check without taking the lock. A
  // stale value is never below the real count (only the loop adds jobs), so
  // admission against it cannot overflow the ring.
  std::atomic<size_t> in_ring_{0};
  // See note_cost().
  std::atomic<uint64_t> job_cost_ns_{0};
  std::atomic<uint64_t> gate_cost_ns_{0};
  std::atomic<uint64_t> sample_cap_ns_{UINT64_MAX};

  // Guarded by ready_mu_.
  std::mutex ready_mu_;
  std::vector<Out> ready_;

  // Loop thread only.
  std::vector<Job> pending_;    // submitted this iteration, not yet handed over
  std::vector<Job> inline_;     // being routed on the loop (run_on_loop)

  bool stopped_ = false;
  UvHandle<uv_check_t> flush_;
  UvHandle<uv_idle_t> assist_;
  bool assisting_ = false;
  uint64_t handed_over_at_ = 0;
  std::vector<Out> draining_;
  WorkerPoolStats stats_;  // but job_cost_ns, kept in job_cost_ns_
  UvHandle<uv_async_t> wake_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice
