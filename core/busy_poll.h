// Bounded busy polling, for latency on machines where a sleeping thread is
// slow to wake (virtual machines above all: a vCPU that halted in
// epoll_wait or futex takes 20-50 µs to run again, more than a proxy hop's
// own work).
//
// It never spins on a guess. The loop spins only after something told it a
// reply is due within microseconds: a head handed to the routing workers, a
// request written to an upstream. Until the budget since the last kick runs
// out, the loop polls with a zero timeout instead of sleeping; then it
// sleeps as usual. Under load the loop has events every
// iteration and never spins; at light load it spins for about one
// upstream's answer time per request. Budget 0 turns it off.
#pragma once

#include <uv.h>

#include <cstdint>

#include "core/uv_handle.h"

namespace sluice {

class BusyPoll {
 public:
  // The handle is unreferenced: a spinning loop with nothing else left
  // still exits.
  BusyPoll(uv_loop_t* loop, uint64_t budget_ns);
  BusyPoll(const BusyPoll&) = delete;
  BusyPoll& operator=(const BusyPoll&) = delete;

  // A reply is due: keep polling for up to the budget from now. Cheap when
  // off (one compare) and when already spinning (a clock read).
  void kick() {
    if (budget_ns_ == 0) return;
    deadline_ = uv_hrtime() + budget_ns_;
    if (!spinning_) start();
  }
  void set_budget(uint64_t budget_ns) { budget_ns_ = budget_ns; }
  uint64_t budget_ns() const { return budget_ns_; }
  bool spinning() const { return spinning_; }
  uint64_t spins() const { return spins_; }  // times the loop started spinning

  void close() { idle_.close(); }

 private:
  void start();
  static void on_idle(uv_idle_t* h);

  UvHandle<uv_idle_t> idle_;
  uint64_t budget_ns_;
  uint64_t deadline_ = 0;
  uint64_t spins_ = 0;
  bool spinning_ = false;
};

}  // namespace sluice
