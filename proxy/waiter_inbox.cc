#include "proxy/waiter_inbox.h"

#include <algorithm>

#include "proxy/request_queue.h"

namespace sluice::proxy {

namespace {
thread_local WaiterInbox* t_current = nullptr;
}  // namespace

Result<std::unique_ptr<WaiterInbox>> WaiterInbox::create(uv_loop_t* loop) {
  std::unique_ptr<WaiterInbox> inbox(new WaiterInbox());
  auto async = UvHandle<uv_async_t>::create(uv_async_init, loop, &WaiterInbox::on_async);
  if (!async) return unexpected("waiter inbox: " + async.error());
  inbox->async_ = std::move(async).value();
  inbox->async_->data = inbox.get();
  // Letters wake the loop only while there are waiters: it must not keep
  // an otherwise finished loop alive.
  uv_unref(inbox->async_.handle());
  t_current = inbox.get();
  return inbox;
}

WaiterInbox::~WaiterInbox() {
  if (t_current == this) t_current = nullptr;
}

WaiterInbox* WaiterInbox::current() { return t_current; }

void WaiterInbox::post(const WaiterLetter& letter) {
  {
    std::lock_guard lock(mu_);
    letters_.push_back(letter);
  }
  uv_async_send(async_.get());
}

std::optional<WaiterLetter> WaiterInbox::take(const QueueWaiter* w) {
  std::lock_guard lock(mu_);
  auto begin = letters_.begin() + static_cast<std::ptrdiff_t>(head_);
  auto it = std::find_if(begin, letters_.end(),
                         [w](const WaiterLetter& l) { return l.waiter == w; });
  if (it == letters_.end()) return std::nullopt;
  WaiterLetter l = *it;
  letters_.erase(it);
  return l;
}

void WaiterInbox::on_async(uv_async_t* h) {
  if (auto* self = static_cast<WaiterInbox*>(h->data)) self->deliver();
}

void WaiterInbox::deliver() {
  // One letter at a time, unlocked while it is delivered: the waiter's
  // answer may close another waiter of this loop, whose letter must then
  // still be in the deque for it to take back.
  for (;;) {
    WaiterLetter l;
    {
      std::lock_guard lock(mu_);
      if (head_ == letters_.size()) {
        letters_.clear();
        head_ = 0;
        return;
      }
      l = letters_[head_++];
    }
    if (l.server != nullptr) {
      l.waiter->on_slot_granted(l.server, l.in_flight, l.index);
    } else {
      l.waiter->on_shed(l.reason);
    }
  }
}

}  // namespace sluice::proxy
