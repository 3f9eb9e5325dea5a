#include "proxy/server.h"

#include <spdlog/spdlog.h>

#include "proxy/client_connection.h"

namespace sluice::proxy {

namespace {
// Jobs waiting for a routing thread. Routing takes microseconds, so a full
// queue means the box is overloaded: shed with 503 instead of growing.
constexpr size_t kRouteQueueCapacity = 16384;
}  // namespace

Server::Server(uv_loop_t* loop, config::ConfigPtr cfg)
    : loop_(loop), cfg_(std::move(cfg)), timers_(loop, &ClientConnection::on_timeout) {
  for (const auto& up : cfg_->upstreams) {
    pools_.emplace(up.name, std::make_unique<UpstreamPool>(loop_, up));
  }
}

Server::~Server() {
  for (auto& slot : slots_) {
    if (slot.conn) slot.conn->close();
  }
  pools_.clear();
  if (workers_) workers_->stop();
}

Result<bool> Server::start() {
  auto log = AccessLog::open(cfg_->logging.access_log);
  if (!log) return unexpected(log.error());
  access_log_ = std::move(log).value();

  auto workers = WorkerPool<RouteJob, RouteResult>::create(
      loop_, {.threads = cfg_->workers, .queue_capacity = kRouteQueueCapacity},
      [](RouteJob& job) { return route_request(std::move(job)); },
      [this](RouteResult&& r) { on_routed(std::move(r)); });
  if (!workers) return unexpected(workers.error());
  workers_ = std::move(workers).value();

  for (const auto& lc : cfg_->listeners) {
    auto l = Listener::bind(loop_, lc, [this](Listener& self, uv_stream_t* s) { on_accept(self, s); });
    if (!l) {
      listeners_.clear();
      return unexpected(l.error());
    }
    spdlog::info("listener {} listening on {}", lc.name, (*l)->bound());
    listeners_.push_back(std::move(l).value());
  }
  return true;
}

void Server::on_accept(Listener& l, uv_stream_t* server) {
  if (draining_) {
    accept_and_drop(server);
    return;
  }
  ConnId id;
  if (!free_slots_.empty()) {
    id = free_slots_.back();
    free_slots_.pop_back();
  } else {
    id = static_cast<ConnId>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[id];
  const config::Listener* lc = nullptr;
  for (const auto& c : cfg_->listeners) {
    if (c.name == l.name()) lc = &c;
  }
  slot.conn = new ClientConnection(*this, id, slot.gen, cfg_, *lc);
  slot.listener = &l;
  ++l.active;
  ++live_;
  slot.conn->accept(server);
}

void Server::release(ClientConnection* conn) {
  Slot& slot = slots_[conn->id()];
  if (slot.listener) --slot.listener->active;
  ++slot.gen;  // results still on a worker for this slot are now stale
  slot.conn = nullptr;
  slot.listener = nullptr;
  free_slots_.push_back(conn->id());
  delete conn;
  --live_;
  if (draining_) maybe_finish_shutdown();
}

bool Server::submit(RouteJob& job) { return workers_->try_submit(job); }

void Server::on_routed(RouteResult&& r) {
  if (r.conn >= slots_.size()) return;
  Slot& slot = slots_[r.conn];
  if (slot.conn == nullptr || slot.gen != r.gen) return;  // the client left meanwhile
  slot.conn->on_routed(std::move(r));
}

UpstreamPool* Server::pool(const std::string& name) {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.get();
}

void Server::shutdown(config::Duration timeout, std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  on_drained_ = std::move(done);
  for (auto& l : listeners_) l->close();
  spdlog::info("draining {} connection(s)", live_);
  for (auto& slot : slots_) {
    if (slot.conn) slot.conn->drain();
  }
  auto timer = UvHandle<uv_timer_t>::create(uv_timer_init, loop_);
  if (timer) {
    drain_timer_ = std::move(timer).value();
    drain_timer_->data = this;
    uv_timer_start(
        drain_timer_.get(),
        [](uv_timer_t* t) {
          auto* self = static_cast<Server*>(t->data);
          spdlog::warn("drain timeout: closing {} connection(s)", self->live_);
          for (auto& slot : self->slots_) {
            if (slot.conn) slot.conn->close();
          }
        },
        static_cast<uint64_t>(timeout.count()), 0);
  }
  maybe_finish_shutdown();
}

void Server::maybe_finish_shutdown() {
  if (live_ == 0 && on_drained_) finish_shutdown();
}

void Server::finish_shutdown() {
  drain_timer_.close();
  timers_.close();
  for (auto& [name, pool] : pools_) pool->close_idle();
  if (workers_) workers_->stop();
  auto done = std::move(on_drained_);
  on_drained_ = nullptr;
  done();
}

}  // namespace sluice::proxy
