#include "core/deadline_timers.h"

#include <cstdlib>

namespace sluice {

DeadlineTimers::DeadlineTimers(uv_loop_t* loop, DeadlineNode::Fire fire)
    : loop_(loop), fire_(fire) {
  auto t = UvHandle<uv_timer_t>::create(uv_timer_init, loop);
  if (!t) std::abort();  // uv_timer_init cannot fail on a live loop
  timer_ = std::move(t).value();
  timer_->data = this;
}

DeadlineTimers::~DeadlineTimers() { timer_.close(); }

DeadlineTimers::List& DeadlineTimers::list_for(uint64_t duration) {
  for (auto& l : lists_) {
    if (l->duration == duration) return *l;
  }
  lists_.push_back(std::make_unique<List>());
  lists_.back()->duration = duration;
  return *lists_.back();
}

void DeadlineTimers::arm(DeadlineNode& n, std::chrono::milliseconds d) {
  cancel(n);
  if (d.count() <= 0) return;
  List& l = list_for(static_cast<uint64_t>(d.count()));
  n.deadline = uv_now(loop_) + l.duration;
  n.list = &l;
  n.prev = l.tail;
  n.next = nullptr;
  if (l.tail) l.tail->next = &n;
  else l.head = &n;
  l.tail = &n;
  ++armed_;
  if (scheduled_ == 0 || n.deadline < scheduled_) schedule();
}

void DeadlineTimers::cancel(DeadlineNode& n) {
  if (n.list == nullptr) return;
  List& l = *static_cast<List*>(n.list);
  if (n.prev) n.prev->next = n.next;
  else l.head = n.next;
  if (n.next) n.next->prev = n.prev;
  else l.tail = n.prev;
  n.prev = n.next = nullptr;
  n.list = nullptr;
  // The timer may now fire early and find nothing due; it then re-arms
  // itself. Cheaper than recomputing the minimum on every cancel. With
  // nothing armed at all it stops, so that it never holds the loop alive
  // by itself (a loop that is shutting down exits when its last
  // connection has closed, not when a stale deadline would have passed).
  if (--armed_ == 0 && scheduled_ != 0 && timer_) {
    scheduled_ = 0;
    uv_timer_stop(timer_.get());
  }
}

void DeadlineTimers::schedule() {
  uint64_t next = 0;
  for (auto& l : lists_) {
    if (l->head && (next == 0 || l->head->deadline < next)) next = l->head->deadline;
  }
  scheduled_ = next;
  if (next == 0) {
    uv_timer_stop(timer_.get());
    return;
  }
  uint64_t now = uv_now(loop_);
  uv_timer_start(timer_.get(), &DeadlineTimers::on_timer, next > now ? next - now : 0, 0);
}

void DeadlineTimers::on_timer(uv_timer_t* t) {
  auto* self = static_cast<DeadlineTimers*>(t->data);
  self->scheduled_ = 0;
  uint64_t now = uv_now(self->loop_);
  for (size_t i = 0; i < self->lists_.size(); ++i) {
    List& l = *self->lists_[i];
    while (l.head && l.head->deadline <= now) {
      DeadlineNode* n = l.head;
      self->cancel(*n);
      self->fire_(n);
    }
  }
  if (self->scheduled_ == 0) self->schedule();
}

}  // namespace sluice
