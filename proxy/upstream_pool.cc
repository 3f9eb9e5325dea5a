#include "proxy/upstream_pool.h"

#include <algorithm>

#include "proxy/upstream_connection.h"

namespace sluice::proxy {

UpstreamPool::UpstreamPool(uv_loop_t* loop, const config::Upstream& cfg)
    : loop_(loop), cfg_(cfg), idle_(cfg.servers.size()),
      balancer_(make_balancer(cfg.balance, cfg.servers.size())) {
  load_.reserve(cfg_.servers.size());
  for (const auto& s : cfg_.servers) {
    load_.push_back({.weight = s.weight, .in_flight = 0, .max_concurrent = s.max_concurrent});
  }
}

UpstreamPool::~UpstreamPool() { close_idle(); }

bool UpstreamPool::reconfigure(const config::Upstream& cfg) {
  if (cfg.servers.size() != cfg_.servers.size()) return false;
  for (size_t i = 0; i < cfg.servers.size(); ++i) {
    if (!cfg.servers[i].address.same_endpoint(cfg_.servers[i].address)) return false;
  }
  const bool new_balance = cfg.balance != cfg_.balance;
  cfg_ = cfg;
  for (size_t i = 0; i < cfg_.servers.size(); ++i) {
    load_[i].weight = cfg_.servers[i].weight;
    load_[i].max_concurrent = cfg_.servers[i].max_concurrent;
  }
  if (new_balance) balancer_ = make_balancer(cfg_.balance, cfg_.servers.size());
  while (idle_count() > cfg_.keepalive.max_idle) {
    for (auto& list : idle_) {
      if (!list.empty() && idle_count() > cfg_.keepalive.max_idle) {
        UpstreamConnection* c = list.front();
        list.erase(list.begin());
        c->abort();
      }
    }
  }
  wake_waiters();  // a raised cap may admit queued requests now
  return true;
}

bool UpstreamPool::quiet() const {
  if (queue_len_ > 0) return false;
  for (const auto& l : load_) {
    if (l.in_flight > 0) return false;
  }
  return true;
}

std::optional<size_t> UpstreamPool::acquire(TriedSet tried) {
  auto pick = balancer_->pick(load_, tried);
  if (pick) ++load_[*pick].in_flight;
  return pick;
}

void UpstreamPool::release(size_t server) {
  --load_[server].in_flight;
  wake_waiters();
}

void UpstreamPool::wake_waiters() {
  // Each woken waiter either takes the free slot or finds none and queues
  // again at the front; stop as soon as no slot is left.
  while (head_ != nullptr && balancer_->pick(load_, 0).has_value()) {
    QueueWaiter* w = head_;
    dequeue(w);
    w->on_slot_available();
  }
}

UpstreamConnection* UpstreamPool::take_idle(size_t server) {
  auto& list = idle_[server];
  if (list.empty()) return nullptr;
  UpstreamConnection* c = list.back();
  list.pop_back();
  return c;
}

bool UpstreamPool::put_idle(UpstreamConnection* conn) {
  if (idle_count() >= cfg_.keepalive.max_idle) return false;
  idle_[conn->server()].push_back(conn);
  return true;
}

void UpstreamPool::forget_idle(UpstreamConnection* conn) {
  auto& list = idle_[conn->server()];
  list.erase(std::remove(list.begin(), list.end(), conn), list.end());
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& list : idle_) n += list.size();
  return n;
}

void UpstreamPool::close_idle() {
  for (auto& list : idle_) {
    auto conns = std::move(list);
    list.clear();
    for (UpstreamConnection* c : conns) c->abort();
  }
}

void UpstreamPool::enqueue(QueueWaiter* w) {
  w->prev_ = tail_;
  w->next_ = nullptr;
  if (tail_) tail_->next_ = w;
  else head_ = w;
  tail_ = w;
  w->queued_ = true;
  ++queue_len_;
}

void UpstreamPool::dequeue(QueueWaiter* w) {
  if (!w->queued_) return;
  if (w->prev_) w->prev_->next_ = w->next_;
  else head_ = w->next_;
  if (w->next_) w->next_->prev_ = w->prev_;
  else tail_ = w->prev_;
  w->prev_ = w->next_ = nullptr;
  w->queued_ = false;
  --queue_len_;
}

}  // namespace sluice::proxy
