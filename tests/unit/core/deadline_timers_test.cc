#include "core/deadline_timers.h"

#include <catch2/catch.hpp>

#include <string>

#include "tests/unit/loop_fixture.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;

std::string fired;

struct Item {
  DeadlineNode node;
  char name;
  explicit Item(char n) : name(n) { node.owner = this; }
};

void record(DeadlineNode* n) { fired += static_cast<Item*>(n->owner)->name; }

TEST_CASE_METHOD(test::LoopFixture, "deadline timers: fire in deadline order across durations",
                 "[deadline_timers]") {
  fired.clear();
  DeadlineTimers timers(loop(), &record);
  Item a('a'), b('b'), c('c');
  timers.arm(a.node, milliseconds(60));
  timers.arm(b.node, milliseconds(20));
  timers.arm(c.node, milliseconds(40));
  REQUIRE(run_until([] { return fired.size() == 3; }, milliseconds(2000)));
  CHECK(fired == "bca");
  CHECK_FALSE(a.node.armed());
}

TEST_CASE_METHOD(test::LoopFixture, "deadline timers: cancel and re-arm", "[deadline_timers]") {
  fired.clear();
  DeadlineTimers timers(loop(), &record);
  Item a('a'), b('b'), c('c');
  timers.arm(a.node, milliseconds(20));
  timers.arm(b.node, milliseconds(20));
  timers.arm(c.node, milliseconds(20));
  timers.cancel(b.node);
  timers.arm(a.node, milliseconds(20));  // re-armed: now after c
  CHECK_FALSE(b.node.armed());
  REQUIRE(run_until([] { return fired.size() == 2; }, milliseconds(2000)));
  CHECK(fired == "ca");
  timers.arm(b.node, milliseconds(0));  // zero disarms
  CHECK_FALSE(b.node.armed());
}

TEST_CASE_METHOD(test::LoopFixture, "deadline timers: a callback may arm again",
                 "[deadline_timers]") {
  static DeadlineTimers* t = nullptr;
  static int count = 0;
  count = 0;
  DeadlineTimers timers(loop(), [](DeadlineNode* n) {
    if (++count < 3) t->arm(*n, milliseconds(5));
  });
  t = &timers;
  Item a('a');
  timers.arm(a.node, milliseconds(5));
  REQUIRE(run_until([] { return count == 3; }, milliseconds(2000)));
  CHECK_FALSE(a.node.armed());
}

TEST_CASE_METHOD(test::LoopFixture,
                 "deadline timers: with nothing armed the timer stops and holds no loop",
                 "[deadline_timers]") {
  fired.clear();
  DeadlineTimers timers(loop(), &record);
  Item a('a'), b('b');
  timers.arm(a.node, milliseconds(10000));
  timers.arm(b.node, milliseconds(20000));
  CHECK(uv_loop_alive(loop()) != 0);
  timers.cancel(a.node);
  CHECK(uv_loop_alive(loop()) != 0);  // b still waits
  timers.cancel(b.node);
  // A loop that is shutting down can exit now, not in 20 s.
  CHECK(uv_loop_alive(loop()) == 0);
  // And arming again starts it again.
  timers.arm(a.node, milliseconds(5));
  REQUIRE(run_until([] { return fired == "a"; }, milliseconds(2000)));
  uv_run(loop(), UV_RUN_NOWAIT);  // run_until's ticking timer finishes closing
  CHECK(uv_loop_alive(loop()) == 0);
}

}  // namespace
}  // namespace sluice
