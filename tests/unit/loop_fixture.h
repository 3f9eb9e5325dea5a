// A fresh libuv loop per test. Teardown requires uv_loop_close() == 0, so a
// test that leaks a handle fails instead of passing quietly.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>

#include "core/loop.h"
#include "core/uv_handle.h"

namespace sluice::test {

class LoopFixture {
 public:
  LoopFixture() = default;
  ~LoopFixture() { CHECK(loop_.close() == 0); }

  uv_loop_t* loop() { return loop_.get(); }

  // Runs the loop until `done()` or `limit` passes; returns done(). A
  // ticking timer keeps UV_RUN_ONCE from blocking past the deadline.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto tick = UvHandle<uv_timer_t>::create(uv_timer_init, loop());
    REQUIRE(tick.ok());
    uv_timer_start(tick->get(), [](uv_timer_t*) {}, 10, 10);
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      uv_run(loop(), UV_RUN_ONCE);
    }
    return done();
  }

 private:
  Loop loop_;
};

}  // namespace sluice::test
