#include "proxy/server.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "proxy/client_connection.h"

namespace sluice::proxy {

namespace {
// Jobs waiting for a routing thread. Routing takes microseconds, so a full
// queue means the box is overloaded: shed with 503 instead of growing.
constexpr size_t kRouteQueueCapacity = 16384;
}  // namespace

Server::Server(uv_loop_t* loop, config::ConfigPtr cfg, const SharedState* home)
    : loop_(loop),
      cfg_(std::move(cfg)),
      busy_poll_(loop, uint64_t{cfg_->busy_poll_us} * 1000),
      timers_(loop, &ClientConnection::on_timeout),
      reuse_port_(cfg_->io_threads > 1) {
  for (const auto& up : cfg_->upstreams) links_.emplace(up.name, make_link(up, home));
}

std::unique_ptr<UpstreamLink> Server::make_link(const config::Upstream& up, const SharedState* home) {
  std::shared_ptr<UpstreamPool> pool;
  if (home != nullptr) {
    if (auto it = home->pools.find(up.name); it != home->pools.end()) pool = it->second;
  }
  // The first loop's pools have it as their home (timer, health checks).
  if (!pool) pool = std::make_shared<UpstreamPool>(loop_, up);
  return std::make_unique<UpstreamLink>(loop_, std::move(pool), up, &busy_poll_);
}

SharedState Server::shared_state() const {
  SharedState st;
  for (const auto& [name, link] : links_) st.pools.emplace(name, link->shared_pool());
  for (const auto& l : listeners_) {
    st.listeners.emplace(l->name(), SharedState::Seat{l->bound_address(), l->share()});
  }
  return st;
}

LoopStats Server::stats() const {
  LoopStats st;
  st.metrics = metrics_;
  st.connections = live_;
  for (const auto* list : {&listeners_, &retired_listeners_}) {
    for (const auto& l : *list) {
      auto& r = st.refused[l->name()];
      for (size_t i = 0; i < r.size(); ++i) r[i] += l->refused[i];
    }
  }
  for (const auto& [name, link] : links_) st.idle[name] = link->idle_count();
  st.access_log_dropped = access_log_ ? access_log_->dropped() : 0;
  st.workers = worker_stats();
  st.busy_poll_spins = busy_poll_.spins();
  st.busy_poll_ns = busy_poll_.spun_ns();
  st.loops = 1;
  st.accepted_by_loop[loop_index_] = metrics_.connections_accepted;
  return st;
}

void Server::collect_stats(StatsCallback done) {
  if (collector_) {
    collector_(std::move(done));
  } else {
    done(stats());
  }
}

Server::~Server() {
  for (auto& slot : slots_) {
    if (slot.conn) slot.conn->close();
  }
  links_.clear();
  retired_links_.clear();
  if (workers_) workers_->stop();
}

Result<bool> Server::start(const SharedState* home) {
  auto inbox = WaiterInbox::create(loop_);
  if (!inbox) return unexpected(inbox.error());
  inbox_ = std::move(inbox).value();
  auto log = AccessLog::open(cfg_->logging.access_log);
  if (!log) return unexpected(log.error());
  access_log_ = std::move(log).value();

  auto workers = WorkerPool<RouteJob, RouteResult>::create(
      loop_,
      // `workers` is the total: each loop has its share.
      {.threads = std::max(1u, cfg_->workers / cfg_->io_threads),
       .queue_capacity = kRouteQueueCapacity,
       .busy_poll = &busy_poll_,
       .inline_budget_ns = uint64_t{cfg_->route_on_loop_us} * 1000,
       .thread_start = warm_routing_thread},
      [](RouteJob& job) { return route_request(std::move(job)); },
      [this](RouteResult&& r) { on_routed(std::move(r)); });
  if (!workers) return unexpected(workers.error());
  workers_ = std::move(workers).value();

  if (cfg_->admin.listen && home == nullptr) {
    auto admin = AdminServer::start(loop_, *cfg_->admin.listen, *this);
    if (!admin) return unexpected(admin.error());
    admin_ = std::move(admin).value();
  }
  for (const auto& lc : cfg_->listeners) {
    auto l = bind(lc, home);
    if (!l) {
      listeners_.clear();
      return unexpected(l.error());
    }
    listeners_.push_back(std::move(l).value());
  }
  return true;
}

Result<std::unique_ptr<Listener>> Server::bind(const config::Listener& lc, const SharedState* home) {
  ListenerOptions opts;
  opts.reuse_port = reuse_port_;
  if (home != nullptr) {
    auto it = home->listeners.find(lc.name);
    if (it == home->listeners.end()) {
      return unexpected("listener " + lc.name + ": the first loop has no socket for it");
    }
    opts.at = it->second.at;
    opts.share = it->second.share;
  }
  auto l = Listener::bind(
      loop_, lc, [this](Listener& self, int fd, const sockaddr_storage& peer) { on_accept(self, fd, peer); },
      std::move(opts));
  if (l && home == nullptr) spdlog::info("listener {} listening on {}", lc.name, (*l)->bound());
  return l;
}

Result<bool> Server::reload(config::ConfigPtr next, Result<std::unique_ptr<AccessLog>> log,
                            const SharedState* home) {
  if (draining_) return unexpected(std::string("shutting down"));
  // 1. Everything that can fail, before anything changes.
  std::vector<std::unique_ptr<Listener>> kept(next->listeners.size());
  std::vector<std::unique_ptr<Listener>> old = std::move(listeners_);
  listeners_.clear();
  auto restore = [&] {
    for (auto& l : old) {
      if (l) listeners_.push_back(std::move(l));
    }
    for (auto& l : kept) {
      if (l) listeners_.push_back(std::move(l));
    }
  };
  for (size_t i = 0; i < next->listeners.size(); ++i) {
    const config::Listener& lc = next->listeners[i];
    for (auto& l : old) {
      if (!l || !l->address().same_endpoint(lc.listen)) continue;
      // Port 0 names no particular socket: such a listener is the same one
      // only under the same name.
      if (lc.listen.port == 0 && l->name() != lc.name) continue;
      kept[i] = std::move(l);
      break;
    }
  }
  std::vector<std::unique_ptr<Listener>> fresh(next->listeners.size());
  for (size_t i = 0; i < next->listeners.size(); ++i) {
    if (kept[i]) continue;
    auto l = bind(next->listeners[i], home);
    if (!l) {
      fresh.clear();  // closes what this reload bound
      restore();
      return unexpected(l.error());
    }
    fresh[i] = std::move(l).value();
  }
  const auto& na = next->admin.listen;
  const auto& oa = cfg_->admin.listen;
  bool admin_changed = na.has_value() != oa.has_value() || (na && !na->same_endpoint(*oa));
  std::unique_ptr<AdminServer> new_admin;
  if (home != nullptr) admin_changed = false;  // the first loop's
  if (admin_changed && na) {
    if (admin_) admin_->close();  // free the port in case only the spelling changed
    auto admin = AdminServer::start(loop_, *na, *this);
    if (!admin) {
      fresh.clear();
      restore();
      return unexpected(admin.error());
    }
    new_admin = std::move(admin).value();
  }
  std::unique_ptr<AccessLog> new_log;
  const auto& al = next->logging.access_log;
  if (al.path != cfg_->logging.access_log.path || al.format != cfg_->logging.access_log.format) {
    if (!log) {
      fresh.clear();
      restore();
      return unexpected(log.error());
    }
    new_log = std::move(log).value();
  }

  // 2. Commit.
  for (auto& l : old) {
    if (!l) continue;
    // Every loop closes its own socket; the first one says so.
    if (home == nullptr) spdlog::info("listener {} on {} closed by reload", l->name(), l->bound());
    l->close();
    retired_listeners_.push_back(std::move(l));
  }
  for (size_t i = 0; i < next->listeners.size(); ++i) {
    if (kept[i]) {
      kept[i]->reconfigure(next->listeners[i]);
      listeners_.push_back(std::move(kept[i]));
    } else {
      listeners_.push_back(std::move(fresh[i]));
    }
  }
  std::unordered_map<std::string, std::unique_ptr<UpstreamLink>> links;
  for (const auto& up : next->upstreams) {
    auto it = links_.find(up.name);
    if (it != links_.end()) {
      // The pools are shared: the first loop reconfigures them, once.
      if (home == nullptr) it->second->pool().reconfigure(up);
      it->second->reconfigure(up);
      links.emplace(up.name, std::move(it->second));
      links_.erase(it);
    } else {
      links.emplace(up.name, make_link(up, home));
    }
  }
  for (auto& [name, link] : links_) {
    link->close_idle();
    retired_links_.push_back(std::move(link));
  }
  links_ = std::move(links);
  // A removed upstream's pool goes when it is quiet; the first loop holds
  // it last, so that it is destroyed on its home loop.
  std::erase_if(retired_links_, [home](const auto& l) {
    return l->pool().quiet() && (home != nullptr || l->shared_pool().use_count() == 1);
  });
  if (new_log) {
    // The old log's writer drains on its own thread: a slow disk must not
    // hold the loop. Finished ones are destroyed at the next reload, the
    // rest when the server goes.
    std::erase_if(retired_logs_, [](const auto& l) { return l->finished(); });
    access_log_->retire();
    retired_logs_.push_back(std::move(access_log_));
    access_log_ = std::move(new_log);
  }
  if (admin_changed) admin_ = std::move(new_admin);
  if (next->workers != cfg_->workers && home == nullptr) {
    spdlog::warn("workers: {} -> {} takes effect at the next restart", cfg_->workers,
                 next->workers);
  }
  busy_poll_.set_budget(uint64_t{next->busy_poll_us} * 1000);
  workers_->set_inline_budget(uint64_t{next->route_on_loop_us} * 1000);
  cfg_ = std::move(next);
  return true;
}

void Server::on_accept(Listener& l, int fd, const sockaddr_storage& peer) {
  size_t lc = cfg_->listeners.size();
  for (size_t i = 0; i < cfg_->listeners.size(); ++i) {
    if (cfg_->listeners[i].name == l.name()) lc = i;
  }
  if (draining_ || lc == cfg_->listeners.size()) {  // shutting down, or a listener the config no longer has
    ::close(fd);
    l.closed();
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
  ++metrics_.connections_accepted;
  slot.conn = new ClientConnection(*this, id, slot.gen, cfg_, static_cast<uint16_t>(lc));
  slot.listener = &l;
  ++live_;
  slot.conn->accept(fd, peer);
}

void Server::release(ClientConnection* conn) {
  Slot& slot = slots_[conn->id()];
  if (slot.listener) slot.listener->closed();
  if (const PeerKey* peer = conn->counted_peer()) slot.listener->release(*peer);
  ++slot.gen;  // results still on a worker for this slot are now stale
  slot.conn = nullptr;
  slot.listener = nullptr;
  free_slots_.push_back(conn->id());
  delete conn;
  --live_;
  if (draining_) maybe_finish_shutdown();
}

bool Server::admit(ConnId id, const sockaddr_storage& peer, PeerKey* key, bool* counted) {
  Slot& slot = slots_[id];
  *counted = false;
  if (slot.listener == nullptr) return true;
  return slot.listener->admit(peer, key, counted);
}

bool Server::submit(RouteJob& job) { return workers_->try_submit(job); }

void Server::on_routed(RouteResult&& r) {
  if (r.conn >= slots_.size()) return;
  Slot& slot = slots_[r.conn];
  if (slot.conn == nullptr || slot.gen != r.gen) return;  // the client left meanwhile
  slot.conn->on_routed(std::move(r));
}

UpstreamLink* Server::link(const std::string& name) {
  auto it = links_.find(name);
  return it == links_.end() ? nullptr : it->second.get();
}

void Server::shutdown(config::Duration timeout, std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  on_drained_ = std::move(done);
  for (auto& l : listeners_) l->close();
  if (admin_) admin_->close();
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

void Server::stop_upstreams() {
  for (auto& [name, link] : links_) link->pool().stop();
  for (auto& link : retired_links_) link->pool().stop();
}

void Server::maybe_finish_shutdown() {
  if (live_ == 0 && on_drained_) finish_shutdown();
}

void Server::finish_shutdown() {
  drain_timer_.close();
  if (admin_) admin_->close();  // kept: an answer being collected still renders through it
  timers_.close();
  for (auto& [name, link] : links_) link->close_idle();
  for (auto& link : retired_links_) link->close_idle();
  if (workers_) workers_->stop();
  auto done = std::move(on_drained_);
  on_drained_ = nullptr;
  done();
}

}  // namespace sluice::proxy
