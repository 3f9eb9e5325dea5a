#include "proxy/upstream_link.h"

#include <algorithm>

#include "proxy/upstream_connection.h"

namespace sluice::proxy {

namespace {

// "Lately", for allowance(): the peak of this window and the one before,
// so a load that pauses for a few seconds finds its connections still open.
constexpr uint64_t kPeakWindowMs = 10'000;

}  // namespace

UpstreamLink::UpstreamLink(uv_loop_t* loop, std::shared_ptr<UpstreamPool> pool,
                           const config::Upstream& cfg, BusyPoll* busy_poll)
    : loop_(loop), pool_(std::move(pool)), cfg_(cfg), busy_poll_(busy_poll),
      timers_(loop, &UpstreamConnection::on_timeout) {}

UpstreamLink::~UpstreamLink() {
  close_idle();
  for (Idle& i : idle_) i.server->idle_refs.fetch_sub(1, std::memory_order_release);
}

UpstreamLink::Idle* UpstreamLink::idle_of(UpstreamServer* s) {
  for (Idle& i : idle_) {
    if (i.server == s) return &i;
  }
  return nullptr;
}

void UpstreamLink::drop(Idle& idle, size_t n) {
  n = std::min(n, idle.conns.size());
  std::vector<UpstreamConnection*> gone(idle.conns.begin(),
                                        idle.conns.begin() + static_cast<std::ptrdiff_t>(n));
  idle.conns.erase(idle.conns.begin(), idle.conns.begin() + static_cast<std::ptrdiff_t>(n));
  idle_total_ -= n;
  for (UpstreamConnection* c : gone) c->abort();
}

void UpstreamLink::reconfigure(const config::Upstream& cfg) {
  cfg_ = cfg;
  // A dropped server's list goes, and with it this link's hold on the
  // server, which its pool may then free.
  for (Idle& i : idle_) {
    if (i.server->retired()) drop(i, i.conns.size());
  }
  std::erase_if(idle_, [](const Idle& i) {
    if (!i.server->retired()) return false;
    i.server->idle_refs.fetch_sub(1, std::memory_order_release);
    return true;
  });
  // Over the new allowance: the oldest go first, round the servers.
  const size_t keep = allowance();
  while (idle_total_ > keep) {
    for (Idle& i : idle_) {
      if (!i.conns.empty() && idle_total_ > keep) drop(i, 1);
    }
  }
}

void UpstreamLink::roll_window() {
  const uint64_t now = uv_now(loop_);
  if (now - window_ms_ < kPeakWindowMs) return;
  // A window with no call at all had busy_ as its peak throughout.
  peak_before_ = now - window_ms_ < 2 * kPeakWindowMs ? peak_ : busy_;
  peak_ = busy_;
  window_ms_ = now;
}

void UpstreamLink::busy_started() {
  ++busy_;
  roll_window();
  peak_ = std::max(peak_, busy_);
}

size_t UpstreamLink::allowance() {
  const size_t max_idle = cfg_.keepalive.max_idle;
  if (max_idle == 0) return 0;  // keep-alive off
  roll_window();
  const size_t peak = std::max(peak_, peak_before_);
  return std::max(max_idle, peak > busy_ ? peak - busy_ : 0);
}

UpstreamConnection* UpstreamLink::take_idle(UpstreamServer* s) {
  Idle* idle = idle_of(s);
  if (idle == nullptr || idle->conns.empty()) return nullptr;
  UpstreamConnection* c = idle->conns.back();
  idle->conns.pop_back();
  --idle_total_;
  return c;
}

bool UpstreamLink::put_idle(UpstreamConnection* conn) {
  UpstreamServer* s = conn->server();
  if (idle_total_ >= allowance() || s->retired()) return false;
  Idle* idle = idle_of(s);
  if (idle == nullptr) {
    idle = &idle_.emplace_back(Idle{s, {}});
    s->idle_refs.fetch_add(1, std::memory_order_acq_rel);
  }
  idle->conns.push_back(conn);
  ++idle_total_;
  return true;
}

void UpstreamLink::forget_idle(UpstreamConnection* conn) {
  Idle* idle = idle_of(conn->server());
  if (idle == nullptr) return;
  auto it = std::find(idle->conns.begin(), idle->conns.end(), conn);
  if (it == idle->conns.end()) return;
  idle->conns.erase(it);
  --idle_total_;
}

void UpstreamLink::close_idle() {
  for (Idle& i : idle_) drop(i, i.conns.size());
}

}  // namespace sluice::proxy
