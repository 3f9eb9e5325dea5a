// Where the queue's decisions about a waiter reach the loop the waiter
// lives on. An upstream's pool is shared by every loop (io_threads), and a
// slot freed on one loop may go to a request queued on another: the
// deciding thread takes the slot for the waiter and posts a letter here,
// and the waiter's own loop delivers it. Same-loop decisions travel the
// same way, so a waiter is never called back while a pool's lock is held
// or from inside the release that freed its slot.
//
// Letters are posted under the deciding pool's lock (lock order: pool,
// then inbox). A waiter that leaves before its letter arrives (its client
// closed) takes the letter back under the same locks, so a letter never
// reaches a waiter that has gone, and a granted slot is never lost.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/result.h"
#include "core/uv_handle.h"
#include "proxy/metrics.h"

namespace sluice::proxy {

class QueueWaiter;
class UpstreamServer;

struct WaiterLetter {
  QueueWaiter* waiter = nullptr;
  UpstreamServer* server = nullptr;  // a granted slot; null: shed for `reason`
  uint32_t in_flight = 0;
  size_t index = 0;
  ShedReason reason = ShedReason::QueueFull;
};

class WaiterInbox {
 public:
  // On the loop's own thread, which it becomes the inbox of (current()).
  static Result<std::unique_ptr<WaiterInbox>> create(uv_loop_t* loop);
  ~WaiterInbox();
  WaiterInbox(const WaiterInbox&) = delete;
  WaiterInbox& operator=(const WaiterInbox&) = delete;

  // The calling thread's inbox; null on a thread without a loop.
  static WaiterInbox* current();

  // Any thread.
  void post(const WaiterLetter& letter);
  // The letter still waiting for `w`, taken back; nullopt if none.
  std::optional<WaiterLetter> take(const QueueWaiter* w);

 private:
  WaiterInbox() = default;
  static void on_async(uv_async_t* h);
  void deliver();

  std::mutex mu_;
  // Unread letters are letters_[head_..]: a vector that keeps its capacity
  // rather than a deque that allocates as it goes.
  std::vector<WaiterLetter> letters_;
  size_t head_ = 0;
  UvHandle<uv_async_t> async_;
};

}  // namespace sluice::proxy
