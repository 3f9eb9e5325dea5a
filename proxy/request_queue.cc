#include "proxy/request_queue.h"

#include <algorithm>
#include <chrono>

namespace sluice::proxy {

namespace {

uint64_t to_ns(config::Duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace

void RequestQueue::push(QueueWaiter* w, config::Priority p, uint64_t now_ns, uint64_t deadline_ns) {
  List& l = list_of(p);
  w->prev_ = l.newest;
  w->next_ = nullptr;
  if (l.newest) l.newest->next_ = w;
  else l.oldest = w;
  l.newest = w;
  ++l.size;
  w->priority_ = p;
  w->enqueued_ns_ = now_ns;
  w->deadline_ns_ = deadline_ns;
  w->queued_ = true;
  if (deadline_ns != 0) ++with_deadline_;
  if (size_++ == 0) nonempty_since_ = now_ns;
}

void RequestQueue::unlink(QueueWaiter* w) {
  List& l = list_of(w->priority_);
  if (w->prev_) w->prev_->next_ = w->next_;
  else l.oldest = w->next_;
  if (w->next_) w->next_->prev_ = w->prev_;
  else l.newest = w->prev_;
  w->prev_ = w->next_ = nullptr;
  w->queued_ = false;
  --l.size;
  --size_;
  if (w->deadline_ns_ != 0) --with_deadline_;
}

void RequestQueue::remove(QueueWaiter* w) {
  if (w->queued_) unlink(w);
}

bool RequestQueue::overloaded(uint64_t now_ns) const {
  return cfg_.mode == config::QueueMode::Adaptive && size_ > 0 && service_ns_ > 0 &&
         now_ns - nonempty_since_ >= std::max(to_ns(cfg_.interval), kIntervalServices * service_ns_);
}

QueueWaiter* RequestQueue::pop(uint64_t now_ns) {
  const bool lifo = overloaded(now_ns);
  for (List& l : lists_) {
    if (l.size == 0) continue;
    QueueWaiter* w = lifo ? l.newest : l.oldest;
    unlink(w);
    return w;
  }
  return nullptr;
}

QueueWaiter* RequestQueue::evict_for(config::Priority p) {
  for (size_t c = lists_.size(); c-- > static_cast<size_t>(p) + 1;) {
    if (lists_[c].size > 0) {
      QueueWaiter* w = lists_[c].oldest;
      unlink(w);
      return w;
    }
  }
  return nullptr;
}

size_t RequestQueue::ahead_of(config::Priority p, uint64_t now_ns) const {
  size_t n = 0;
  for (size_t c = 0; c < static_cast<size_t>(p); ++c) n += lists_[c].size;
  // Newest first: a request joining now is next in its class.
  if (!overloaded(now_ns)) n += lists_[static_cast<size_t>(p)].size;
  return n;
}

QueueWaiter* RequestQueue::next_expired(uint64_t now_ns, ShedReason& reason) {
  if (size_ == 0) return nullptr;
  if (overloaded(now_ns)) {
    // The oldest of each class waited longest; target applies to all.
    const uint64_t target = std::max(to_ns(cfg_.target), service_ns_);
    for (List& l : lists_) {
      if (l.size > 0 && now_ns - l.oldest->enqueued_ns_ > target) {
        QueueWaiter* w = l.oldest;
        unlink(w);
        reason = ShedReason::Overload;
        return w;
      }
    }
  }
  if (with_deadline_ == 0) return nullptr;
  // Budgets differ per request, so no order helps; only requests that
  // carried a budget header cost this walk.
  for (List& l : lists_) {
    for (QueueWaiter* w = l.oldest; w != nullptr; w = w->next_) {
      if (w->deadline_ns_ != 0 && now_ns >= w->deadline_ns_) {
        unlink(w);
        reason = ShedReason::Deadline;
        return w;
      }
    }
  }
  return nullptr;
}

}  // namespace sluice::proxy
