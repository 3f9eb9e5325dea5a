// The waiting room of one upstream: requests that found every server at
// its limit. Loop thread only; time is passed in, so the discipline can be
// tested without a clock.
//
// One intrusive list per priority class, so joining and leaving allocate
// nothing and a client that leaves is unlinked in O(1). A higher class is
// always served first. Within a class the order depends on load:
//  - while the queue keeps draining, first come first served;
//  - once it has not been empty for a whole `interval` (CoDel's sign of a
//    standing queue rather than a burst), newest first, and nobody waits
//    longer than `target`. Under sustained overload the oldest waiters are
//    the likeliest to have been abandoned by their clients; serving the
//    newest keeps goodput up, and the short wait sheds the rest fast enough
//    for their clients to go elsewhere (the "adaptive LIFO + CoDel" of
//    Facebook's "Fail at Scale").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "proxy/metrics.h"

namespace sluice::proxy {

class UpstreamServer;
class WaiterInbox;

// A request waiting for a slot. Its pool may be shared by several loops,
// so what the queue decides for it is delivered as a letter through the
// inbox of the loop it belongs to, never by a call from the deciding
// thread (see waiter_inbox.h). Delivery happens on that loop, after the
// waiter is off the queue.
class QueueWaiter {
 public:
  // A slot on `server` was taken for this waiter: it is the waiter's to use
  // or to give back (UpstreamPool::release). `in_flight` counts the
  // server's requests with this one, `index` is the server's place in its
  // pool.
  virtual void on_slot_granted(UpstreamServer* server, uint32_t in_flight, size_t index) = 0;
  // Dropped from the queue: answer 503.
  virtual void on_shed(ShedReason reason) = 0;

  // Under the lock of the queue's owner.
  bool queued() const { return queued_; }

 protected:
  ~QueueWaiter() = default;

 private:
  friend class RequestQueue;
  friend class UpstreamPool;
  QueueWaiter* prev_ = nullptr;  // towards older
  QueueWaiter* next_ = nullptr;  // towards newer
  WaiterInbox* inbox_ = nullptr;  // of the loop it waits on; set by admit
  uint64_t enqueued_ns_ = 0;
  uint64_t deadline_ns_ = 0;  // 0 = only the queue's own timeout applies
  config::Priority priority_ = config::Priority::Normal;
  bool queued_ = false;
};

class RequestQueue {
 public:
  explicit RequestQueue(const config::Queue& cfg) : cfg_(cfg) {}
  void configure(const config::Queue& cfg) { cfg_ = cfg; }
  // The app's observed service time. `interval` and `target` are floors:
  // for an app that takes 300 ms an answer, a queue that stays non-empty
  // for 500 ms is a burst draining, not overload. The standing-queue signal
  // needs kIntervalServices service times, and the overload wait allows
  // one. 0 (nothing measured yet): never overloaded, for want of evidence.
  void set_service_time(uint64_t ns) { service_ns_ = ns; }
  static constexpr uint64_t kIntervalServices = 4;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ >= cfg_.max_length; }

  // `deadline_ns` (0 = none): the client's own budget, enforced by expire().
  void push(QueueWaiter* w, config::Priority p, uint64_t now_ns, uint64_t deadline_ns = 0);
  // The next waiter to serve, taken off the queue; null when empty.
  QueueWaiter* pop(uint64_t now_ns);
  void remove(QueueWaiter* w);

  // For a full queue: the waiter to drop so that a request of class `p` can
  // join (the oldest of the lowest class below `p`), taken off the queue;
  // null if every waiter is of class `p` or higher.
  QueueWaiter* evict_for(config::Priority p);

  // How many waiters would be served before a request of class `p` that
  // joined now.
  size_t ahead_of(config::Priority p, uint64_t now_ns) const;

  // A standing queue: not empty for a whole interval (never in fifo mode).
  bool overloaded(uint64_t now_ns) const;

  // The next waiter that must leave now, taken off the queue: one that
  // waited past `target` while overloaded, or past its own deadline.
  // Call until it returns null; `reason` says why.
  QueueWaiter* next_expired(uint64_t now_ns, ShedReason& reason);

 private:
  struct List {
    QueueWaiter* oldest = nullptr;
    QueueWaiter* newest = nullptr;
    size_t size = 0;
  };
  List& list_of(config::Priority p) { return lists_[static_cast<size_t>(p)]; }
  void unlink(QueueWaiter* w);

  config::Queue cfg_;
  std::array<List, config::kPriorities> lists_{};
  size_t size_ = 0;
  size_t with_deadline_ = 0;     // waiters with a budget of their own
  uint64_t nonempty_since_ = 0;  // when the queue last went from empty to not
  uint64_t service_ns_ = 0;
};

}  // namespace sluice::proxy
