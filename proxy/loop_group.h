// The event loops of one sluice (io_threads): the first runs on the
// caller's thread and owns what exists once (signals are the caller's; the
// admin listener, health checks and the upstream pools' timers are its);
// each other loop runs on a thread of its own with a Server of its own:
// its own sockets on every listener's address (SO_REUSEPORT, so the kernel
// spreads new connections), its own connections, timers and routing
// workers, and the first loop's upstream pools, shared, so the shield
// holds across loops. With io_threads: 1 this is the first loop alone.
//
// The loops meet only through the pools (a lock per upstream) and through
// LoopTasks for what is rare: reload, log reopening, shutdown and admin
// scrapes, which add up every loop's counters.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/loop_tasks.h"
#include "core/result.h"
#include "proxy/access_log.h"
#include "proxy/server.h"

namespace sluice::proxy {

class LoopGroup {
 public:
  LoopGroup(uv_loop_t* loop, config::ConfigPtr cfg);
  // Stops and joins the other loops if shutdown() has not.
  ~LoopGroup();
  LoopGroup(const LoopGroup&) = delete;
  LoopGroup& operator=(const LoopGroup&) = delete;

  Server& home() { return home_; }
  size_t loops() const { return 1 + others_.size(); }

  // The first loop, then the others, each binding where the first did. On
  // error nothing listens.
  Result<bool> start();
  // The first loop reloads; if that worked, every other loop does, with its
  // own access log from `logs` (one per loop, opened off the loops).
  Result<bool> reload(config::ConfigPtr next, std::vector<Result<std::unique_ptr<AccessLog>>> logs);
  void reopen_logs();
  // Every loop drains; `done` runs on the first once all have.
  void shutdown(config::Duration timeout, std::function<void()> done);
  // For the systemd watchdog: `alive` runs on the first loop once every
  // other loop has run a task posted now. A stuck loop never answers, so
  // the watchdog goes unfed and systemd restarts sluice. While one ping is
  // out, another is not sent.
  void ping(std::function<void()> alive);

 private:
  struct Other {
    std::thread thread;
    // The loop's, made on its thread and kept here until the thread is
    // joined: after the loop has closed it, post() still answers (false).
    std::unique_ptr<LoopTasks> tasks;
    Server* server = nullptr;  // valid while the loop runs; reached only through tasks
    bool drained = false;      // its shutdown is done
  };

  void run_other(Other& o, unsigned index, config::ConfigPtr cfg, SharedState st,
                 std::function<void(Result<bool>)> started);
  void collect(Server::StatsCallback done);
  void drained_one();
  void stop_others();

  uv_loop_t* loop_;
  unsigned io_threads_;
  Server home_;
  std::unique_ptr<LoopTasks> tasks_;  // the first loop's, while others run
  std::vector<std::unique_ptr<Other>> others_;
  bool stopping_ = false;
  bool pinging_ = false;
  size_t draining_ = 0;
  std::function<void()> on_drained_;
};

}  // namespace sluice::proxy
