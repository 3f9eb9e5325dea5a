#include "cmd/daemon.h"
#include "cmd/reloader.h"

#include <csignal>
#include <functional>
#include <iostream>

#include "config/load.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sd_notify.h"
#include "core/signals.h"
#include "core/uv_handle.h"
#include "proxy/loop_group.h"

namespace sluice {

namespace {

spdlog::level::level_enum to_spdlog(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::Trace: return spdlog::level::trace;
    case config::LogLevel::Debug: return spdlog::level::debug;
    case config::LogLevel::Info: return spdlog::level::info;
    case config::LogLevel::Warn: return spdlog::level::warn;
    case config::LogLevel::Error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

int run_daemon(const std::string& config_path) {
  auto loaded = config::load_file(config_path);
  if (!loaded) {
    for (const auto& e : loaded.error()) std::cerr << e.to_string() << "\n";
    return 1;
  }
  config::ConfigPtr cfg = std::move(loaded).value();
  init_logging(to_spdlog(cfg->logging.level));
  ignore_sigpipe();

  int exit_code = 0;
  {
    Loop loop;
    SdNotifier notifier;
    proxy::LoopGroup loops(loop.get(), cfg);
    Reloader reloader(loop.get(), config_path, loops, notifier,
                      [](const config::ConfigPtr& next) {
                        init_logging(to_spdlog(next->logging.level));
                      });
    UvHandle<uv_timer_t> watchdog;
    // Fed only once every event loop has answered: a stuck loop gets the
    // process restarted.
    std::function<void()> ping = [&] { loops.ping([&] { notifier.send("WATCHDOG=1"); }); };
    std::unique_ptr<SignalWatcher> signals;
    auto stop = [&] {
      if (signals) signals->close();
      watchdog.close();
    };
    // Signals are watched before any listener is bound: a SIGHUP or SIGTERM
    // sent as soon as the port answers must not meet the default action
    // (which for SIGHUP is to terminate). Their callbacks run on the loop.
    auto watcher = SignalWatcher::create(
        loop.get(), {SIGTERM, SIGINT, SIGHUP, SIGUSR1}, [&](int signum) {
          if (signum == SIGUSR1) {
            spdlog::info("SIGUSR1: reopening log files");
            loops.reopen_logs();
            return;
          }
          if (signum == SIGHUP) {
            reloader.request();
            return;
          }
          spdlog::info("{}: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
          notifier.stopping();
          loops.shutdown(loops.home().config()->drain_timeout, [&] {
            spdlog::info("stopped");
            stop();
          });
        });
    if (!watcher) {
      spdlog::error("{}", watcher.error());
      exit_code = 1;
    } else {
      signals = std::move(watcher).value();
    }
    if (exit_code == 0) {
      if (auto started = loops.start(); !started) {
        spdlog::error("{}", started.error());
        exit_code = 1;
      }
    }
    if (exit_code != 0) {
      stop();
    } else {
      if (auto interval = SdNotifier::watchdog_interval()) {
        auto t = UvHandle<uv_timer_t>::create(uv_timer_init, loop.get());
        if (t) {
          watchdog = std::move(t).value();
          watchdog->data = &ping;
          auto ms = static_cast<uint64_t>(interval->count() / 1000);
          uv_timer_start(
              watchdog.get(),
              [](uv_timer_t* h) { (*static_cast<std::function<void()>*>(h->data))(); }, ms, ms);
        }
      }
      notifier.ready();
      loop.run();
    }
  }
  spdlog::shutdown();
  return exit_code;
}

}  // namespace sluice
