#include "core/busy_poll.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "core/worker_pool.h"
#include "tests/unit/loop_fixture.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;

// Loop iterations (prepare callbacks) while the loop runs for `how_long`
// with one timer ticking every 10 ms: a sleeping loop makes about one
// iteration per tick, a spinning one thousands.
struct IterationCounter {
  explicit IterationCounter(uv_loop_t* loop) {
    auto p = UvHandle<uv_prepare_t>::create(uv_prepare_init, loop);
    REQUIRE(p.ok());
    prepare = std::move(p).value();
    prepare->data = &count;
    uv_prepare_start(prepare.get(), [](uv_prepare_t* h) { ++*static_cast<uint64_t*>(h->data); });
  }
  uint64_t count = 0;
  UvHandle<uv_prepare_t> prepare;
};

uint64_t iterations_during(test::LoopFixture& f, IterationCounter& c, std::chrono::milliseconds how_long) {
  uint64_t before = c.count;
  auto end = std::chrono::steady_clock::now() + how_long;
  f.run_until([&] { return std::chrono::steady_clock::now() >= end; });
  return c.count - before;
}

// Runs the loop until the busy poll has stopped spinning; false after 2 s.
bool wait_until_asleep(test::LoopFixture& f, BusyPoll& bp) {
  auto end = std::chrono::steady_clock::now() + 2s;
  f.run_until([&] { return !bp.spinning() || std::chrono::steady_clock::now() >= end; });
  return !bp.spinning();
}

TEST_CASE_METHOD(test::LoopFixture, "busy poll: a kick makes the loop poll without sleeping for the budget",
                 "[busy_poll]") {
  IterationCounter counter(loop());
  BusyPoll bp(loop(), 30'000'000);  // 30 ms
  uint64_t asleep = iterations_during(*this, counter, 40ms);
  CHECK_FALSE(bp.spinning());
  bp.kick();
  CHECK(bp.spinning());
  uint64_t spinning = iterations_during(*this, counter, 20ms);
  INFO("iterations in 40 ms asleep: " << asleep << ", in 20 ms spinning: " << spinning);
  CHECK(asleep < 20);  // one per 10 ms tick, give or take
  CHECK(spinning > 200);
  // The budget runs out: back to sleeping. (Waited for rather than
  // assumed after 30 ms: on a loaded machine the loop's thread may be off
  // the CPU when the budget ends.)
  REQUIRE(wait_until_asleep(*this, bp));
  uint64_t after = iterations_during(*this, counter, 40ms);
  CHECK(after < 20);
  CHECK(bp.spins() == 1);
  // One spell of the 30 ms budget: it ends at the first iteration past it,
  // about 30 ms on an idle machine, and never anywhere near the 2 s waited.
  CHECK(bp.spun_ns() >= 30'000'000);
  CHECK(bp.spun_ns() < 1'000'000'000);
  bp.close();
}

TEST_CASE_METHOD(test::LoopFixture, "busy poll: budget 0 never spins; a new kick extends the budget",
                 "[busy_poll]") {
  IterationCounter counter(loop());
  BusyPoll bp(loop(), 0);
  bp.kick();
  CHECK_FALSE(bp.spinning());
  CHECK(iterations_during(*this, counter, 30ms) < 20);
  CHECK(bp.spun_ns() == 0);

  bp.set_budget(20'000'000);  // 20 ms, as a reload would
  bp.kick();
  iterations_during(*this, counter, 15ms);
  bp.kick();  // 15 ms in: the window restarts
  iterations_during(*this, counter, 15ms);
  CHECK(bp.spinning());  // 30 ms after the first kick, 15 after the second
  REQUIRE(wait_until_asleep(*this, bp));
  CHECK(bp.spins() == 1);
  bp.close();
}

TEST_CASE("busy poll: a spinning handle does not keep the loop alive", "[busy_poll]") {
  Loop loop;
  {
    BusyPoll bp(loop.get(), 10'000'000'000);  // 10 s
    bp.kick();
    auto start = std::chrono::steady_clock::now();
    uv_run(loop.get(), UV_RUN_DEFAULT);  // nothing referenced: returns at once
    CHECK(std::chrono::steady_clock::now() - start < 1s);
  }
  CHECK(loop.close() == 0);
}

struct Job {
  uint64_t n = 0;
};
struct Out {
  uint64_t n = 0;
  uint64_t doubled = 0;
};

TEST_CASE_METHOD(test::LoopFixture, "busy poll: worker pool hand-overs kick it and results stay exact",
                 "[busy_poll][worker_pool]") {
  BusyPoll bp(loop(), 200'000);  // 200 µs
  uint64_t got = 0;
  uint64_t sum = 0;
  auto pool = WorkerPool<Job, Out>::create(
      loop(), {.threads = 3, .queue_capacity = 1024, .busy_poll = &bp},
      [](Job& j) { return Out{j.n, j.n * 2}; },
      [&](Out&& o) {
        ++got;
        sum += o.doubled;
      });
  REQUIRE(pool.ok());
  // Rounds of one job and of many, with pauses longer and shorter than the
  // budget in between: the loop spins for some results and sleeps for others.
  uint64_t expected = 0;
  uint64_t sent = 0;
  for (int round = 0; round < 60; ++round) {
    int batch = round % 3 == 0 ? 50 : 1;
    for (int i = 0; i < batch; ++i) {
      Job j{++sent};
      expected += j.n * 2;
      REQUIRE((*pool)->try_submit(j));
    }
    REQUIRE(run_until([&] { return got == sent; }));
    if (round % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(round % 4 == 0 ? 1000 : 50));
  }
  CHECK(got == sent);
  CHECK(sum == expected);
  CHECK(bp.spins() >= 1);
  (*pool)->stop();
  bp.close();
}

TEST_CASE_METHOD(test::LoopFixture, "busy poll off, no inline budget: a job waits for a worker, never the loop",
                 "[busy_poll][worker_pool]") {
  // One worker, held inside the first job: the second job sits in the ring.
  std::atomic<bool> release{false};
  std::atomic<bool> holding{false};
  std::vector<uint64_t> got;
  BusyPoll bp(loop(), 0);
  auto pool = WorkerPool<Job, Out>::create(
      loop(), {.threads = 1, .queue_capacity = 16, .busy_poll = &bp},
      [&](Job& j) {
        if (j.n == 1) {
          holding = true;
          while (!release) std::this_thread::sleep_for(1ms);
        }
        return Out{j.n, j.n * 2};
      },
      [&](Out&& o) { got.push_back(o.n); });
  REQUIRE(pool.ok());
  Job first{1};
  REQUIRE((*pool)->try_submit(first));
  (*pool)->flush();
  while (!holding) std::this_thread::sleep_for(1ms);
  Job second{2};
  REQUIRE((*pool)->try_submit(second));
  CHECK_FALSE(run_until([&] { return !got.empty(); }, 200ms));
  CHECK((*pool)->stats().assisted == 0);
  release = true;
  REQUIRE(run_until([&] { return got.size() == 2; }));
  CHECK(got == std::vector<uint64_t>{1, 2});
  (*pool)->stop();
  bp.close();
}

TEST_CASE_METHOD(test::LoopFixture, "busy poll on: the loop routes what fits its budget, workers the rest",
                 "[busy_poll][worker_pool]") {
  const auto loop_thread = std::this_thread::get_id();
  BusyPoll bp(loop(), 50'000'000);
  std::vector<std::pair<uint64_t, bool>> got;  // job, ran on the loop thread
  auto pool = WorkerPool<Job, Out>::create(
      loop(), {.threads = 2, .queue_capacity = 64, .busy_poll = &bp, .inline_budget_ns = 200'000},
      [&](Job& j) {
        // Job 1 takes longer than a loop iteration's routing budget.
        if (j.n == 1) std::this_thread::sleep_for(2ms);
        return Out{j.n, j.n * 2};
      },
      [&](Out&& o) { got.emplace_back(o.n, std::this_thread::get_id() == loop_thread); });
  REQUIRE(pool.ok());

  // A lone job is routed during the hand-over itself, on the loop.
  Job lone{7};
  REQUIRE((*pool)->try_submit(lone));
  (*pool)->flush();
  REQUIRE(got.size() == 1);
  CHECK(got[0] == std::make_pair(uint64_t{7}, true));
  CHECK((*pool)->stats().assisted == 1);
  got.clear();

  // The slow job uses up the budget: the rest of the batch goes to the
  // workers (or, if none takes them within microseconds, to the idle loop).
  for (uint64_t n = 1; n <= 10; ++n) {
    Job j{n};
    REQUIRE((*pool)->try_submit(j));
  }
  (*pool)->flush();
  CHECK(got.size() == 1);  // job 1, inline; the 9 others were handed over
  REQUIRE(run_until([&] { return got.size() == 10; }));
  std::vector<uint64_t> ids;
  for (const auto& [n, on_loop] : got) ids.push_back(n);
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(got[0] == std::make_pair(uint64_t{1}, true));  // first, and inline
  CHECK((*pool)->stats().delivered == 11);
  (*pool)->stop();
  bp.close();
}

}  // namespace
}  // namespace sluice
