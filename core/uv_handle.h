// RAII ownership of one libuv handle.
//
// libuv may touch a handle until its close callback has run, so the handle's
// memory cannot live inside an owner that is destroyed right after uv_close().
// UvHandle heap-allocates the handle and frees it only in the close callback:
// destroying the owner closes the handle (no further callbacks fire) and the
// memory goes away one loop iteration later. One close path, no leak, no
// use-after-free.
#pragma once

#include <uv.h>

#include <string>
#include <utility>

#include "core/result.h"

namespace sluice {

template <class H>
class UvHandle {
 public:
  UvHandle() = default;
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UvHandle& operator=(UvHandle&& o) noexcept {
    if (this != &o) {
      close();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~UvHandle() { close(); }

  // Allocates and initialises a handle: `init(loop, handle, args...)`, e.g.
  // UvHandle<uv_timer_t>::create(uv_timer_init, loop). A handle whose init
  // failed was never registered with the loop, so it is deleted directly.
  template <class Init, class... Args>
  static Result<UvHandle> create(Init init, uv_loop_t* loop, Args&&... args) {
    H* h = new H{};
    int rc = init(loop, h, std::forward<Args>(args)...);
    if (rc != 0) {
      delete h;
      return unexpected(std::string(uv_strerror(rc)));
    }
    return UvHandle(h);
  }

  H* get() const { return h_; }
  H* operator->() const { return h_; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
  explicit operator bool() const { return h_ != nullptr; }

  // Idempotent. After this no callback of the handle runs except the
  // internal one that frees it.
  void close() {
    if (h_ == nullptr) return;
    uv_handle_t* h = handle();
    h_ = nullptr;
    h->data = nullptr;
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<H*>(closed); });
  }

 private:
  explicit UvHandle(H* h) : h_(h) {}
  H* h_ = nullptr;
};

}  // namespace sluice
