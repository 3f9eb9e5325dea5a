#include "core/worker_pool.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>
#include <vector>

#include "tests/unit/loop_fixture.h"

namespace sluice {
namespace {

struct Job {
  uint64_t id = 0;
  uint64_t input = 0;
};
struct Out {
  uint64_t id = 0;
  uint64_t square = 0;
  std::thread::id worker;
};

using Pool = WorkerPool<Job, Out>;

Out square(Job& j) { return {j.id, j.input * j.input, std::this_thread::get_id()}; }

// Uses `d` of this thread's CPU time: the pool measures workers in CPU time,
// so a sleeping job would look free.
void burn_cpu(std::chrono::microseconds d) {
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  const auto until = cpu_now() + d;
  while (cpu_now() < until) {
  }
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: N jobs in, N results out on the loop thread",
                 "[worker_pool]") {
  const auto loop_thread = std::this_thread::get_id();
  std::vector<Out> got;
  bool delivered_on_loop = true;
  auto pool = Pool::create(loop(), {.threads = 4, .queue_capacity = 256}, square, [&](Out&& o) {
    delivered_on_loop = delivered_on_loop && std::this_thread::get_id() == loop_thread;
    got.push_back(o);
  });
  REQUIRE(pool.ok());

  const size_t n = 200;
  for (size_t i = 0; i < n; ++i) {
    Job j{i, i + 1};
    REQUIRE((*pool)->try_submit(j));
  }
  REQUIRE(run_until([&] { return got.size() == n; }));

  CHECK(delivered_on_loop);
  std::vector<bool> seen(n, false);
  for (const Out& o : got) {
    REQUIRE(o.id < n);
    CHECK(o.square == (o.id + 1) * (o.id + 1));
    CHECK(o.worker != loop_thread);
    CHECK_FALSE(seen[o.id]);
    seen[o.id] = true;
  }
  CHECK((*pool)->stats().delivered == n);
  CHECK((*pool)->stats().submitted == n);
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: a burst of 10,000 jobs needs few loop wake-ups",
                 "[worker_pool]") {
  size_t got = 0;
  auto pool = Pool::create(loop(), {.threads = 2, .queue_capacity = 10000}, square,
                           [&](Out&&) { ++got; });
  REQUIRE(pool.ok());
  const size_t n = 10000;
  for (size_t i = 0; i < n; ++i) {
    Job j{i, i};
    REQUIRE((*pool)->try_submit(j));
  }
  REQUIRE(run_until([&] { return got == n; }));
  const auto& stats = (*pool)->stats();
  INFO("wake-ups for " << n << " results: " << stats.wakeups);
  CHECK(stats.delivered == n);
  CHECK(stats.wakeups >= 1);
  // Each wake-up drains every ready result; one per result would mean the
  // coalescing is broken.
  CHECK(stats.wakeups * 10 < n);
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: a full queue rejects and keeps the job",
                 "[worker_pool]") {
  std::atomic<bool> release{false};
  std::atomic<int> started{0};
  size_t got = 0;
  auto blocking = [&](Job& j) {
    ++started;
    while (!release.load()) std::this_thread::yield();
    return Out{j.id, 0, {}};
  };
  auto pool = Pool::create(loop(), {.threads = 1, .queue_capacity = 2}, blocking,
                           [&](Out&&) { ++got; });
  REQUIRE(pool.ok());
  // Whatever fails below, the worker must be let go or stop() never joins.
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag = true; }
  } guard{release};

  Job first{1, 0};
  REQUIRE((*pool)->try_submit(first));
  REQUIRE(run_until([&] { return started.load() > 0; }));  // the thread holds job 1
  Job a{2, 0}, b{3, 0}, c{4, 0};
  CHECK((*pool)->try_submit(a));
  CHECK((*pool)->try_submit(b));
  CHECK_FALSE((*pool)->try_submit(c));
  CHECK(c.id == 4);  // not moved from: the caller still owns it
  CHECK((*pool)->stats().rejected == 1);

  release = true;
  CHECK(run_until([&] { return got == 3; }));
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: jobs of one loop iteration go over together",
                 "[worker_pool]") {
  size_t got = 0;
  auto pool = Pool::create(loop(), {.threads = 2, .queue_capacity = 64}, square,
                           [&](Out&&) { ++got; });
  REQUIRE(pool.ok());
  for (uint64_t i = 0; i < 10; ++i) {
    Job j{i, i};
    REQUIRE((*pool)->try_submit(j));
  }
  // Nothing has left the loop thread yet: the hand-over happens after the
  // iteration's I/O, so ten submissions cost one lock and one notify.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  uv_run(loop(), UV_RUN_NOWAIT);  // check phase: hand-over
  REQUIRE(run_until([&] { return got == 10; }));
  CHECK((*pool)->stats().delivered == 10);
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: the loop runs what fits its inline budget, workers the rest",
                 "[worker_pool]") {
  const auto loop_thread = std::this_thread::get_id();
  std::vector<Out> got;
  auto pool = Pool::create(loop(), {.threads = 2, .queue_capacity = 64, .inline_budget_ns = 200'000},
                           [](Job& j) {
                             // Job 1 takes longer than an iteration's budget.
                             if (j.id == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
                             return square(j);
                           },
                           [&](Out&& o) { got.push_back(o); });
  REQUIRE(pool.ok());

  // A lone job runs during the hand-over itself, on the loop: no wake-up.
  Job lone{7, 3};
  REQUIRE((*pool)->try_submit(lone));
  (*pool)->flush();
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == 7);
  CHECK(got[0].square == 9);
  CHECK(got[0].worker == loop_thread);
  CHECK((*pool)->stats().assisted == 1);
  CHECK((*pool)->stats().wakeups == 0);
  got.clear();

  // The slow job uses up the budget; the rest of the batch goes to the
  // workers, which run it off the loop.
  for (uint64_t n = 1; n <= 10; ++n) {
    Job j{n, n};
    REQUIRE((*pool)->try_submit(j));
  }
  (*pool)->flush();
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == 1);
  CHECK(got[0].worker == loop_thread);
  REQUIRE(run_until([&] { return got.size() == 10; }));
  std::vector<uint64_t> ids;
  for (size_t i = 1; i < got.size(); ++i) {
    ids.push_back(got[i].id);
    CHECK(got[i].square == got[i].id * got[i].id);
    CHECK(got[i].worker != loop_thread);
  }
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK((*pool)->stats().assisted == 2);
  CHECK((*pool)->stats().delivered == 11);

  // A budget of 0 (set at reload) hands everything over.
  (*pool)->set_inline_budget(0);
  got.clear();
  Job late{5, 5};
  REQUIRE((*pool)->try_submit(late));
  (*pool)->flush();
  CHECK(got.empty());
  REQUIRE(run_until([&] { return got.size() == 1; }));
  CHECK(got[0].worker != loop_thread);
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture,
                 "worker pool: expensive jobs go to the workers, and cheap ones come back to the loop",
                 "[worker_pool]") {
  const auto loop_thread = std::this_thread::get_id();
  std::vector<Out> got;
  auto pool = Pool::create(loop(), {.threads = 2, .queue_capacity = 64, .inline_budget_ns = 200'000},
                           [](Job& j) {
                             // input 0: a job costing half the budget (a long regex list).
                             if (j.input == 0) burn_cpu(std::chrono::microseconds(100));
                             return square(j);
                           },
                           [&](Out&& o) { got.push_back(o); });
  REQUIRE(pool.ok());
  CHECK((*pool)->stats().job_cost_ns == 0);

  // One expensive job does not close the gate (it could be a cold cache or
  // a preemption): each sample is capped at half the budget and the average
  // starts at 0, so 100 µs jobs run inline three times (12.5, 23.4, then
  // 33.0 µs against 25) and the fourth goes to a worker.
  int inline_count = 0;
  bool handed = false;
  for (uint64_t id = 1; id <= 6 && !handed; ++id) {
    got.clear();
    Job expensive{id, 0};
    REQUIRE((*pool)->try_submit(expensive));
    (*pool)->flush();
    if (got.size() == 1) {
      CHECK(got[0].worker == loop_thread);
      ++inline_count;
      continue;
    }
    handed = true;
    REQUIRE(run_until([&] { return got.size() == 1; }));
    CHECK(got[0].worker != loop_thread);
  }
  CHECK(handed);
  CHECK(inline_count == 3);
  CHECK((*pool)->stats().assisted == 3);
  CHECK((*pool)->stats().job_cost_ns >= 25'000);

  // Cheap jobs, measured on the workers, bring the average down until the
  // loop runs them itself again (from about 41 µs, four samples).
  int handed_over = 0;
  bool back_on_loop = false;
  for (uint64_t id = 3; id < 60 && !back_on_loop; ++id) {
    got.clear();
    Job cheap{id, 2};
    REQUIRE((*pool)->try_submit(cheap));
    (*pool)->flush();
    if (got.size() == 1) {
      back_on_loop = got[0].worker == loop_thread;
      continue;
    }
    ++handed_over;
    REQUIRE(run_until([&] { return got.size() == 1; }));
    CHECK(got[0].worker != loop_thread);
  }
  INFO(handed_over << " cheap jobs went to the workers first");
  CHECK(back_on_loop);
  CHECK(handed_over >= 1);
  // Below the gate (25 µs) when the loop took the job back; the sample it
  // measured there may have been preempted, and samples are capped at half
  // the budget.
  CHECK((*pool)->stats().job_cost_ns <= 100'000);
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: a new budget (reload) measures the cost afresh",
                 "[worker_pool]") {
  const auto loop_thread = std::this_thread::get_id();
  std::vector<Out> got;
  auto pool = Pool::create(loop(), {.threads = 1, .queue_capacity = 16, .inline_budget_ns = 200'000},
                           [](Job& j) {
                             burn_cpu(std::chrono::microseconds(100));
                             return square(j);
                           },
                           [&](Out&& o) { got.push_back(o); });
  REQUIRE(pool.ok());
  // Close the gate: three expensive jobs on the loop, the fourth handed over.
  for (uint64_t id = 1; id <= 4; ++id) {
    Job j{id, id};
    REQUIRE((*pool)->try_submit(j));
    (*pool)->flush();
  }
  REQUIRE(run_until([&] { return got.size() == 4; }));
  CHECK(got[3].worker != loop_thread);
  CHECK((*pool)->stats().job_cost_ns > 0);

  // The reload's routes may be cheap: nothing measured is kept, so the next
  // job runs on the loop again.
  (*pool)->set_inline_budget(200'000);
  CHECK((*pool)->stats().job_cost_ns == 0);
  got.clear();
  Job next{5, 5};
  REQUIRE((*pool)->try_submit(next));
  (*pool)->flush();
  REQUIRE(got.size() == 1);
  CHECK(got[0].worker == loop_thread);
  (*pool)->stop();
}

TEST_CASE_METHOD(test::LoopFixture, "worker pool: stop drops pending work and leaks no handle",
                 "[worker_pool]") {
  size_t got = 0;
  auto pool = Pool::create(loop(), {.threads = 2, .queue_capacity = 1000}, square,
                           [&](Out&&) { ++got; });
  REQUIRE(pool.ok());
  for (uint64_t i = 0; i < 1000; ++i) {
    Job j{i, i};
    (*pool)->try_submit(j);
  }
  (*pool)->stop();
  Job late{1, 1};
  CHECK_FALSE((*pool)->try_submit(late));
  // The fixture's teardown checks uv_loop_close() == 0.
}

}  // namespace
}  // namespace sluice
