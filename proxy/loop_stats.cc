#include "proxy/loop_stats.h"

#include <algorithm>

namespace sluice::proxy {

void LoopStats::add(const LoopStats& o) {
  metrics.add(o.metrics);
  connections += o.connections;
  for (const auto& [name, r] : o.refused) {
    auto& mine = refused[name];
    for (size_t i = 0; i < r.size(); ++i) mine[i] += r[i];
  }
  for (const auto& [name, n] : o.idle) idle[name] += n;
  access_log_dropped += o.access_log_dropped;
  // The job cost is an average per loop: the figure shown is their mean.
  const uint64_t cost = (workers.job_cost_ns * loops + o.workers.job_cost_ns * o.loops) /
                        std::max(1u, loops + o.loops);
  workers.submitted += o.workers.submitted;
  workers.rejected += o.workers.rejected;
  workers.delivered += o.workers.delivered;
  workers.wakeups += o.workers.wakeups;
  workers.assisted += o.workers.assisted;
  workers.job_cost_ns = cost;
  busy_poll_spins += o.busy_poll_spins;
  busy_poll_ns += o.busy_poll_ns;
  loops += o.loops;
  for (const auto& [loop, n] : o.accepted_by_loop) accepted_by_loop[loop] += n;
}

}  // namespace sluice::proxy
