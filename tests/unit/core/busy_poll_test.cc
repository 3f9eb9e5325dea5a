#include "core/busy_poll.h"

#include <catch2/catch.hpp>

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
  // The budget runs out: back to sleeping.
  iterations_during(*this, counter, 30ms);
  CHECK_FALSE(bp.spinning());
  uint64_t after = iterations_during(*this, counter, 40ms);
  CHECK(after < 20);
  CHECK(bp.spins() == 1);
  bp.close();
}

TEST_CASE_METHOD(test::LoopFixture, "busy poll: budget 0 never spins; a new kick extends the budget",
                 "[busy_poll]") {
  IterationCounter counter(loop());
  BusyPoll bp(loop(), 0);
  bp.kick();
  CHECK_FALSE(bp.spinning());
  CHECK(iterations_during(*this, counter, 30ms) < 20);

  bp.set_budget(20'000'000);  // 20 ms, as a reload would
  bp.kick();
  iterations_during(*this, counter, 15ms);
  bp.kick();  // 15 ms in: the window restarts
  iterations_during(*this, counter, 15ms);
  CHECK(bp.spinning());  // 30 ms after the first kick, 15 after the second
  iterations_during(*this, counter, 25ms);
  CHECK_FALSE(bp.spinning());
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

TEST_CASE_METHOD(test::LoopFixture, "busy poll: the idle loop runs a job no worker has taken",
                 "[busy_poll][worker_pool]") {
  // One worker, held inside the first job: the second job sits in the ring.
  std::atomic<bool> release{false};
  std::atomic<bool> holding{false};
  const auto loop_thread = std::this_thread::get_id();
  std::vector<std::pair<uint64_t, bool>> got;  // job, ran on the loop thread
  for (uint64_t budget : {uint64_t{0}, uint64_t{50'000'000}}) {
    DYNAMIC_SECTION("budget " << budget) {
      BusyPoll bp(loop(), budget);
      auto pool = WorkerPool<Job, Out>::create(
          loop(), {.threads = 1, .queue_capacity = 16, .busy_poll = &bp},
          [&](Job& j) {
            if (j.n == 1) {
              holding = true;
              while (!release) std::this_thread::sleep_for(1ms);
            }
            return Out{j.n, j.n * 2};
          },
          [&](Out&& o) { got.emplace_back(o.n, std::this_thread::get_id() == loop_thread); });
      REQUIRE(pool.ok());
      Job first{1};
      REQUIRE((*pool)->try_submit(first));
      (*pool)->flush();
      while (!holding) std::this_thread::sleep_for(1ms);
      Job second{2};
      REQUIRE((*pool)->try_submit(second));
      bool done = run_until([&] { return got.size() == 1; }, 200ms);
      if (budget == 0) {
        CHECK_FALSE(done);  // it waits for the busy worker
        CHECK((*pool)->stats().assisted == 0);
      } else {
        REQUIRE(done);
        CHECK(got[0] == std::make_pair(uint64_t{2}, true));
        CHECK((*pool)->stats().assisted == 1);
      }
      release = true;
      REQUIRE(run_until([&] { return got.size() == 2; }));
      CHECK((*pool)->stats().delivered == 2);
      (*pool)->stop();
      bp.close();
      got.clear();
      release = false;
      holding = false;
    }
  }
}

}  // namespace
}  // namespace sluice
