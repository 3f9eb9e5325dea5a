#include "cmd/reloader.h"

#include <spdlog/spdlog.h>

namespace sluice {

Reloader::Reloader(uv_loop_t* loop, std::string path, proxy::LoopGroup& loops,
                   SdNotifier& notifier, Applied applied)
    : loop_(loop), path_(std::move(path)), loops_(loops), log_count_(loops.loops()),
      notifier_(notifier), applied_(std::move(applied)) {
  req_.data = this;
}

void Reloader::request() {
  if (running_) {
    again_ = true;
    return;
  }
  start();
}

void Reloader::start() {
  running_ = true;
  again_ = false;
  notifier_.reloading();
  spdlog::info("SIGHUP: reloading {}", path_);
  int rc = uv_queue_work(loop_, &req_, &Reloader::work, &Reloader::done);
  if (rc != 0) {
    running_ = false;
    spdlog::error("reload: {}", uv_strerror(rc));
    notifier_.ready();
  }
}

void Reloader::work(uv_work_t* req) {
  auto* self = static_cast<Reloader*>(req->data);
  self->loaded_.emplace(config::load_file(self->path_));
  // Opened here, off the loop, whether or not it changed: the loops use
  // them only if it did. Appending to the same file twice is harmless.
  // One per loop: each loop writes its own lines.
  if (*self->loaded_) {
    for (size_t i = 0; i < self->log_count_; ++i) {
      self->logs_.push_back(proxy::AccessLog::open((**self->loaded_)->logging.access_log));
    }
  }
}

void Reloader::done(uv_work_t* req, int) {
  auto* self = static_cast<Reloader*>(req->data);
  self->running_ = false;
  auto loaded = std::move(*self->loaded_);
  self->loaded_.reset();
  auto logs = std::move(self->logs_);
  self->logs_.clear();
  if (!loaded) {
    for (const auto& e : loaded.error()) spdlog::error("{}", e.to_string());
    spdlog::error("reload: {} has {} error(s); the running configuration stays", self->path_,
                  loaded.error().size());
  } else if (auto applied = self->loops_.reload(*loaded, std::move(logs)); !applied) {
    spdlog::error("reload: {}; the running configuration stays", applied.error());
  } else {
    self->applied_(*loaded);
    spdlog::info("reload: {} is in effect", self->path_);
  }
  // READY=1 after a failed reload too: the daemon is serving either way.
  self->notifier_.ready();
  if (self->again_) self->start();
}

}  // namespace sluice
