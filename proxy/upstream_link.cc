#include "proxy/upstream_link.h"

#include <algorithm>

#include "proxy/upstream_connection.h"

namespace sluice::proxy {

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
  // Over the new max_idle: the oldest go first, round the servers.
  while (idle_total_ > cfg_.keepalive.max_idle) {
    for (Idle& i : idle_) {
      if (!i.conns.empty() && idle_total_ > cfg_.keepalive.max_idle) drop(i, 1);
    }
  }
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
  if (idle_total_ >= cfg_.keepalive.max_idle || s->retired()) return false;
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
