#include "core/signals.h"

#include <csignal>
#include <memory>

namespace sluice {

Result<std::unique_ptr<SignalWatcher>> SignalWatcher::create(uv_loop_t* loop,
                                                             std::initializer_list<int> signals,
                                                             Handler handler) {
  std::unique_ptr<SignalWatcher> w(new SignalWatcher(std::move(handler)));
  for (int signum : signals) {
    auto h = UvHandle<uv_signal_t>::create(uv_signal_init, loop);
    if (!h) return unexpected("signal watcher: " + h.error());
    (*h)->data = w.get();
    int rc = uv_signal_start(h->get(), &SignalWatcher::on_signal, signum);
    if (rc != 0) return unexpected(std::string("uv_signal_start: ") + uv_strerror(rc));
    w->handles_.push_back(std::move(h).value());
  }
  return w;
}

void SignalWatcher::close() { handles_.clear(); }

void SignalWatcher::on_signal(uv_signal_t* h, int signum) {
  auto* self = static_cast<SignalWatcher*>(h->data);
  if (self != nullptr) self->handler_(signum);
}

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

}  // namespace sluice
