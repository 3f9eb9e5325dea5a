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

}  // namespace
}  // namespace sluice
