#include "core/busy_poll.h"

namespace sluice {

BusyPoll::BusyPoll(uv_loop_t* loop, uint64_t budget_ns) : budget_ns_(budget_ns) {
  // uv_idle_init cannot fail on a live loop; a null handle just never spins.
  if (auto idle = UvHandle<uv_idle_t>::create(uv_idle_init, loop)) {
    idle_ = std::move(idle).value();
    idle_->data = this;
    uv_unref(idle_.handle());
  }
}

void BusyPoll::start(uint64_t now) {
  if (!idle_) return;
  // An active idle handle, referenced or not, makes uv_run poll with a zero
  // timeout: that is the whole mechanism.
  uv_idle_start(idle_.get(), &BusyPoll::on_idle);
  spinning_ = true;
  started_ns_ = now;
  ++spins_;
}

void BusyPoll::on_idle(uv_idle_t* h) {
  auto* self = static_cast<BusyPoll*>(h->data);
  const uint64_t now = uv_hrtime();
  if (now < self->deadline_) return;
  uv_idle_stop(h);
  self->spinning_ = false;
  self->spun_ns_ += now - self->started_ns_;
}

}  // namespace sluice
