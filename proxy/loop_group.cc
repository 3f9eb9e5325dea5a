#include "proxy/loop_group.h"

#include <spdlog/spdlog.h>

#include <future>

#include "core/loop.h"

namespace sluice::proxy {

LoopGroup::LoopGroup(uv_loop_t* loop, config::ConfigPtr cfg)
    : loop_(loop), io_threads_(cfg->io_threads), home_(loop, cfg) {}

LoopGroup::~LoopGroup() {
  stop_others();
  if (tasks_) tasks_->close();
}

Result<bool> LoopGroup::start() {
  if (auto r = home_.start(); !r) return r;
  if (io_threads_ <= 1) return true;
  auto tasks = LoopTasks::create(loop_);
  if (!tasks) return unexpected(tasks.error());
  tasks_ = std::move(tasks).value();
  home_.set_collector([this](Server::StatsCallback done) { collect(std::move(done)); });
  const SharedState st = home_.shared_state();
  for (unsigned i = 1; i < io_threads_; ++i) {
    auto o = std::make_unique<Other>();
    std::promise<Result<bool>> started;
    auto result = started.get_future();
    Other& ref = *o;
    o->thread = std::thread([this, &ref, i, cfg = home_.config(), st, p = std::move(started)]() mutable {
      run_other(ref, i, cfg, st, [&p](Result<bool> r) { p.set_value(std::move(r)); });
    });
    others_.push_back(std::move(o));
    // Start-up, before the first loop runs: waiting here blocks no I/O.
    if (auto r = result.get(); !r) {
      stop_others();
      return unexpected("io thread " + std::to_string(i) + ": " + r.error());
    }
  }
  spdlog::info("{} event loops", io_threads_);
  return true;
}

void LoopGroup::run_other(Other& o, unsigned index, config::ConfigPtr cfg, SharedState st,
                          std::function<void(Result<bool>)> started) {
  Loop loop;
  auto created = LoopTasks::create(loop.get());
  if (!created) {
    started(unexpected(created.error()));
    return;
  }
  o.tasks = std::move(created).value();
  auto server = std::make_unique<Server>(loop.get(), cfg, &st);
  server->set_loop_index(index);
  auto r = server->start(&st);
  o.server = server.get();
  const bool ok = r.ok();
  started(std::move(r));  // the first loop goes on from here
  if (ok) loop.run();
  o.tasks->close();  // runs what is left; from now on post() refuses
  server.reset();
  loop.close();
}

void LoopGroup::stop_others() {
  for (auto& o : others_) {
    if (!o->thread.joinable()) continue;
    // Not drained by shutdown(): close everything now.
    if (o->tasks && !o->drained) {
      o->tasks->post([o = o.get()] {
        o->server->shutdown(std::chrono::milliseconds(0), [o] { o->tasks->close(); });
      });
    }
    o->thread.join();
  }
  others_.clear();
}

Result<bool> LoopGroup::reload(config::ConfigPtr next,
                               std::vector<Result<std::unique_ptr<AccessLog>>> logs) {
  if (next->io_threads != io_threads_) {
    spdlog::warn("io_threads: {} -> {} takes effect at the next restart", io_threads_,
                 next->io_threads);
  }
  while (logs.size() < loops()) logs.emplace_back(unexpected(std::string("access log not opened")));
  if (auto r = home_.reload(next, std::move(logs[0])); !r) return r;
  // The others follow with the first loop's reconfigured pools and new
  // sockets. What fails there (rare: the first loop bound the same
  // addresses) is logged; that loop keeps what it could not change.
  auto st = std::make_shared<const SharedState>(home_.shared_state());
  for (size_t i = 0; i < others_.size(); ++i) {
    Other* o = others_[i].get();
    auto log = std::make_shared<Result<std::unique_ptr<AccessLog>>>(std::move(logs[i + 1]));
    o->tasks->post([o, next, log, st, i] {
      if (auto r = o->server->reload(next, std::move(*log), st.get()); !r) {
        spdlog::error("reload: io thread {}: {}", i + 1, r.error());
      }
    });
  }
  return true;
}

void LoopGroup::reopen_logs() {
  home_.reopen_logs();
  for (auto& o : others_) {
    if (!o->drained) o->tasks->post([o = o.get()] { o->server->reopen_logs(); });
  }
}

void LoopGroup::collect(Server::StatsCallback done) {
  struct Gather {
    LoopStats sum;
    size_t waiting = 0;
    Server::StatsCallback done;
  };
  auto g = std::make_shared<Gather>();
  g->sum = home_.stats();
  g->done = std::move(done);
  g->waiting = others_.size();
  auto answered = [g] {
    if (--g->waiting == 0) g->done(g->sum);
  };
  for (auto& o : others_) {
    // Copied on that loop; added up here, on the first.
    bool posted = !o->drained && o->tasks->post([o = o.get(), g, answered, home = tasks_.get()] {
      auto st = std::make_shared<LoopStats>(o->server->stats());
      home->post([g, st, answered] {
        g->sum.add(*st);
        answered();
      });
    });
    if (!posted) answered();  // that loop has finished
  }
  if (others_.empty()) g->done(g->sum);
}

void LoopGroup::shutdown(config::Duration timeout, std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  on_drained_ = std::move(done);
  draining_ = loops();
  home_.shutdown(timeout, [this] { drained_one(); });
  for (auto& o : others_) {
    o->tasks->post([o = o.get(), timeout, home = tasks_.get(), this] {
      o->server->shutdown(timeout, [o, home, this] {
        home->post([this, o] {
          o->drained = true;  // its LoopTasks may be gone from now on
          drained_one();
        });
        o->tasks->close();  // the loop ends once its last handle has closed
      });
    });
  }
}

void LoopGroup::ping(std::function<void()> alive) {
  if (others_.empty()) {
    alive();
    return;
  }
  if (pinging_) return;
  pinging_ = true;
  auto left = std::make_shared<size_t>(others_.size());
  auto answered = [this, left, alive] {
    if (--*left > 0) return;
    pinging_ = false;
    alive();
  };
  for (auto& o : others_) {
    const bool posted = !o->drained && o->tasks->post([home = tasks_.get(), answered] {
      home->post(answered);
    });
    if (!posted) answered();
  }
}

void LoopGroup::drained_one() {
  if (--draining_ > 0) return;
  // The other threads end on their own; the destructor joins them, after
  // this loop has stopped (a join here would block it).
  if (tasks_) tasks_->close();
  // Health checks, slow-start ramps and ejection timers would otherwise
  // keep this loop, and the process, running after the last connection.
  home_.stop_upstreams();
  auto done = std::move(on_drained_);
  on_drained_ = nullptr;
  if (done) done();
}

}  // namespace sluice::proxy
