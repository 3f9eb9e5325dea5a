#include <catch2/catch.hpp>

#include "core/loop.h"
#include "core/uv_handle.h"

namespace sluice {
namespace {

TEST_CASE("loop: a closed UvHandle lets the loop close", "[loop]") {
  Loop loop;
  {
    auto timer = UvHandle<uv_timer_t>::create(uv_timer_init, loop.get());
    REQUIRE(timer.ok());
    uv_timer_start(timer->get(), [](uv_timer_t*) {}, 1000, 0);
  }  // destroyed: closed, freed in the close callback
  CHECK(loop.close() == 0);
}

TEST_CASE("loop: a leaked handle makes close() fail", "[loop]") {
  Loop loop;
  uv_timer_t leaked;
  uv_timer_init(loop.get(), &leaked);
  CHECK(loop.close() == UV_EBUSY);
  uv_close(reinterpret_cast<uv_handle_t*>(&leaked), nullptr);
  CHECK(loop.close() == 0);
}

TEST_CASE("loop: a moved UvHandle closes once", "[loop]") {
  Loop loop;
  auto a = UvHandle<uv_async_t>::create(uv_async_init, loop.get(), nullptr);
  REQUIRE(a.ok());
  UvHandle<uv_async_t> b = std::move(a).value();
  UvHandle<uv_async_t> c;
  c = std::move(b);
  CHECK(c);
  c.close();
  c.close();
  CHECK(loop.close() == 0);
}

}  // namespace
}  // namespace sluice
