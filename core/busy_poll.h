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
    const uint64_t now = uv_hrtime();
    deadline_ = now + budget_ns_;
    if (!spinning_) start(now);
  }
  void set_budget(uint64_t budget_ns) { budget_ns_ = budget_ns; }
  uint64_t budget_ns() const { return budget_ns_; }
  bool spinning() const { return spinning_; }
  uint64_t spins() const { return spins_; }  // times the loop started spinning
  // Wall time spent with polling on, the current spell included: an upper
  // bound on the CPU that polling cost (the loop also did its real work in
  // that time), for operators weighing the budget.
  uint64_t spun_ns() const { return spinning_ ? spun_ns_ + (uv_hrtime() - started_ns_) : spun_ns_; }

  void close() { idle_.close(); }

 private:
  void start(uint64_t now);
  static void on_idle(uv_idle_t* h);

  UvHandle<uv_idle_t> idle_;
  uint64_t budget_ns_;
  uint64_t deadline_ = 0;
  uint64_t spins_ = 0;
  uint64_t started_ns_ = 0;  // when the current spell began
  uint64_t spun_ns_ = 0;     // spells that ended
  bool spinning_ = false;
};

}  // namespace sluice
