// Timeouts for many objects at the price of one libuv timer.
//
// A uv_timer_t per connection costs ~150 bytes and a heap operation per
// re-arm. But a proxy's timeouts come in a handful of durations (header,
// idle, body, send), and entries armed with the same duration expire in the
// order they were armed. So each duration gets a FIFO list: arming appends
// at the tail, cancelling unlinks, both O(1) with no allocation, and the
// earliest deadline of every list is the list's head. One uv_timer_t
// follows the earliest head of all lists.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/uv_handle.h"

namespace sluice {

class DeadlineTimers;

// Embedded in the object it times; loop thread only.
struct DeadlineNode {
  using Fire = void (*)(DeadlineNode*);

  DeadlineNode* prev = nullptr;
  DeadlineNode* next = nullptr;
  uint64_t deadline = 0;  // uv_now() milliseconds
  void* list = nullptr;   // the list it is on, or null when not armed
  void* owner = nullptr;  // the object timed, for the fire callback

  bool armed() const { return list != nullptr; }
};

class DeadlineTimers {
 public:
  // `fire` is called for each node whose deadline passes; the node is
  // already disarmed when it runs and may be armed again.
  DeadlineTimers(uv_loop_t* loop, DeadlineNode::Fire fire);
  ~DeadlineTimers();
  DeadlineTimers(const DeadlineTimers&) = delete;
  DeadlineTimers& operator=(const DeadlineTimers&) = delete;

  // (Re)arms `n` to fire `d` from now. A zero duration disarms it.
  void arm(DeadlineNode& n, std::chrono::milliseconds d);
  void cancel(DeadlineNode& n);

  // Stops the timer; every node must have been cancelled or fired.
  void close() { timer_.close(); }

 private:
  struct List {
    uint64_t duration = 0;
    DeadlineNode* head = nullptr;
    DeadlineNode* tail = nullptr;
  };

  List& list_for(uint64_t duration);
  void schedule();
  static void on_timer(uv_timer_t* t);

  uv_loop_t* loop_;
  DeadlineNode::Fire fire_;
  std::vector<std::unique_ptr<List>> lists_;  // few: one per distinct duration
  UvHandle<uv_timer_t> timer_;
  uint64_t scheduled_ = 0;  // when timer_ fires; 0 = not running
  size_t armed_ = 0;        // nodes on the lists
};

}  // namespace sluice
