#include "proxy/upstream_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "proxy/health_checker.h"
#include "proxy/retry_budget.h"

namespace sluice::proxy {

namespace {

uint64_t to_ns(config::Duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// Housekeeping runs this often while anything depends on time: a standing
// queue to trim, budgets to enforce, an ejection or slow start under way.
constexpr uint64_t kTickMs = 20;
// Smoothing of service time and drain rate: about the last 20 completions /
// the last few seconds, quick enough to follow a change of load.
constexpr double kEwma = 0.05;
constexpr uint64_t kDrainWindowNs = 250'000'000;

std::unique_ptr<RetryBudget> make_budget(const config::Retries& r) {
  return std::make_unique<RetryBudget>(RetryBudgetOptions{
      .ratio = r.budget_percent / 100.0, .min_per_second = r.budget_min_per_second});
}

}  // namespace

UpstreamPool::UpstreamPool(uv_loop_t* home, const config::Upstream& cfg)
    : home_(home), home_thread_(std::this_thread::get_id()), name_(cfg.name), cfg_(cfg),
      balancer_(make_balancer(cfg.balance, cfg.servers.size())),
      queue_(cfg.queue), budget_(make_budget(cfg.retries)) {
  for (const auto& s : cfg_.servers) {
    servers_.push_back(std::make_unique<UpstreamServer>(s, cfg_));
    servers_.back()->index = servers_.size() - 1;
  }
  if (auto t = UvHandle<uv_timer_t>::create(uv_timer_init, home_)) {
    timer_ = std::move(*t);
    timer_->data = this;
  }
  if (auto k = UvHandle<uv_async_t>::create(uv_async_init, home_, &UpstreamPool::on_kick)) {
    kick_ = std::move(*k);
    kick_->data = this;
    uv_unref(kick_.handle());
  }
  start_checks();
}

UpstreamPool::~UpstreamPool() { stop_checks(); }

void UpstreamPool::start_checks() {
  if (!cfg_.health_check) return;
  std::vector<bool> initial;
  for (const auto& s : servers_) initial.push_back(s->check_healthy());
  checker_ = HealthChecker::start(home_, *cfg_.health_check, cfg_.servers, this, initial);
}

void UpstreamPool::stop_checks() {
  if (checker_ != nullptr) checker_->stop();
  checker_ = nullptr;
}

void UpstreamPool::on_health_change(size_t server, bool healthy, const char* reason) {
  std::lock_guard lock(mu_);
  if (server >= servers_.size()) return;
  UpstreamServer& s = *servers_[server];
  spdlog::warn("upstream {}: server {} is {} ({})", name_, s.address(),
               healthy ? "healthy" : "unhealthy", reason);
  s.set_check_result(healthy, uv_hrtime());
  ensure_timer();
  serve_queue();
}

void UpstreamPool::reconfigure(const config::Upstream& cfg) {
  std::lock_guard lock(mu_);
  const bool new_balance = cfg.balance != cfg_.balance || cfg.servers.size() != cfg_.servers.size();
  const uint64_t now = uv_hrtime();
  std::vector<std::unique_ptr<UpstreamServer>> next;
  for (const auto& sc : cfg.servers) {
    std::unique_ptr<UpstreamServer> kept;
    for (auto& s : servers_) {
      if (s && s->endpoint().same_endpoint(sc.address)) {
        kept = std::move(s);
        break;
      }
    }
    if (kept) {
      kept->configure(sc, cfg);
    } else {
      kept = std::make_unique<UpstreamServer>(sc, cfg);
      kept->begin_slow_start(now);  // a server added to a running upstream
    }
    kept->index = next.size();
    next.push_back(std::move(kept));
  }
  for (auto& s : servers_) {
    if (!s) continue;
    s->index = UpstreamServer::kRetired;
    s->retire();  // each loop closes its idle connections to it (UpstreamLink)
    retired_.push_back(std::move(s));
  }
  servers_ = std::move(next);
  drop_retired();

  if (cfg.retries.budget_percent != cfg_.retries.budget_percent ||
      cfg.retries.budget_min_per_second != cfg_.retries.budget_min_per_second) {
    budget_ = make_budget(cfg.retries);  // what was earned so far is forgotten: rare
  }
  cfg_ = cfg;
  queue_.configure(cfg_.queue);
  if (new_balance) balancer_ = make_balancer(cfg_.balance, cfg_.servers.size());
  // The checker indexes servers by position, which a reload may change:
  // start it afresh, carrying each server's state.
  stop_checks();
  if (!stopped_) start_checks();
  ensure_timer();
  serve_queue();  // raised limits may admit queued requests now
}

void UpstreamPool::drop_retired() {
  std::erase_if(retired_, [](const auto& s) {
    return s->in_flight() == 0 && s->idle_refs.load(std::memory_order_acquire) == 0;
  });
}

void UpstreamPool::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  stop_checks();
  if (timer_running_) {
    uv_timer_stop(timer_.get());
    timer_running_ = false;
  }
}

bool UpstreamPool::quiet() const {
  std::lock_guard lock(mu_);
  if (!queue_.empty() || !retired_.empty()) return false;
  for (const auto& s : servers_) {
    if (s->in_flight() > 0) return false;
  }
  return true;
}

std::span<const ServerLoad> UpstreamPool::snapshot() {
  view_.resize(servers_.size());
  for (size_t i = 0; i < servers_.size(); ++i) view_[i] = servers_[i]->load();
  return view_;
}

SlotGrant UpstreamPool::take(size_t i) {
  UpstreamServer* s = servers_[i].get();
  s->take_slot();
  return {.server = s, .in_flight = s->in_flight(), .index = i};
}

SlotGrant UpstreamPool::acquire(TriedSet tried, bool new_request) {
  std::lock_guard lock(mu_);
  if (new_request) budget_->deposit(uv_hrtime());
  auto pick = balancer_->pick(snapshot(), tried);
  if (!pick) return {};
  return take(*pick);
}

size_t UpstreamPool::healthy_count() const {
  size_t n = 0;
  for (const auto& s : servers_) n += s->load().healthy ? 1 : 0;
  return n;
}

bool UpstreamPool::all_down() const {
  std::lock_guard lock(mu_);
  return healthy_count() == 0;
}

uint32_t UpstreamPool::in_flight_of(const UpstreamServer* s) const {
  std::lock_guard lock(mu_);
  return s->in_flight();
}

void UpstreamPool::release(UpstreamServer* s, Outcome outcome, uint64_t rtt_ns,
                           uint32_t in_flight_at_start) {
  std::lock_guard lock(mu_);
  give_back(s, outcome, rtt_ns, in_flight_at_start);
  serve_queue();
}

void UpstreamPool::give_back(UpstreamServer* s, Outcome outcome, uint64_t rtt_ns,
                             uint32_t in_flight_at_start) {
  s->give_slot();
  const uint64_t now = uv_hrtime();
  switch (outcome) {
    case Outcome::Success: {
      s->on_success(now, rtt_ns, in_flight_at_start);
      service_ewma_ns_ = service_ewma_ns_ == 0
                             ? rtt_ns
                             : static_cast<uint64_t>(kEwma * static_cast<double>(rtt_ns) +
                                                     (1 - kEwma) * static_cast<double>(service_ewma_ns_));
      queue_.set_service_time(service_ewma_ns_);
      // Completions per second over windows of a quarter second, smoothed.
      ++drain_count_;
      if (drain_window_ns_ == 0) drain_window_ns_ = now;
      if (now - drain_window_ns_ >= kDrainWindowNs) {
        double rate = static_cast<double>(drain_count_) * 1e9 / static_cast<double>(now - drain_window_ns_);
        drain_rate_ = drain_rate_ == 0 ? rate : 0.5 * rate + 0.5 * drain_rate_;
        drain_window_ns_ = now;
        drain_count_ = 0;
      }
      break;
    }
    case Outcome::Overload: s->on_overload(now, rtt_ns, in_flight_at_start); break;
    case Outcome::Failure:
      // Never eject the last server in use: with nowhere else to go, every
      // request would get a 503 instead of the chance of an answer.
      if (healthy_count() > 1 && s->on_failure(now)) ensure_timer();
      break;
    case Outcome::Neutral: break;
  }
  if (s->index == UpstreamServer::kRetired && s->in_flight() == 0) drop_retired();
}

void UpstreamPool::post(QueueWaiter* w, const WaiterLetter& letter) {
  w->inbox_->post(letter);
}

void UpstreamPool::serve_queue() {
  // Each free slot is taken for the waiter it goes to, so a request that
  // arrives on another loop meanwhile cannot take it first.
  const uint64_t now = uv_hrtime();
  while (!queue_.empty()) {
    auto pick = balancer_->pick(snapshot(), 0);
    if (!pick) break;
    SlotGrant g = take(*pick);
    QueueWaiter* w = queue_.pop(now);
    post(w, {.waiter = w, .server = g.server, .in_flight = g.in_flight, .index = g.index});
  }
  if (!queue_.empty()) ensure_timer();
}

std::optional<ShedReason> UpstreamPool::admit(QueueWaiter* w, config::Priority p, uint64_t budget_ns) {
  WaiterInbox* inbox = WaiterInbox::current();
  if (inbox == nullptr) return ShedReason::QueueFull;  // not on a loop: nowhere to wait
  std::lock_guard lock(mu_);
  const uint64_t now = uv_hrtime();
  const uint64_t timeout = to_ns(cfg_.queue.timeout);
  const uint64_t budget = budget_ns == 0 ? timeout : std::min(budget_ns, timeout);
  // Predicted wait: those ahead of it, served by every slot at the observed
  // pace. Shedding now beats shedding after the client has waited for
  // nothing. Without a service time yet (a cold start) nothing is predicted.
  if (service_ewma_ns_ > 0) {
    uint64_t slots = 0;
    for (const auto& s : servers_) {
      if (s->load().healthy) slots += s->limit() == 0 ? 1 : s->limit();
    }
    const uint64_t ahead = queue_.ahead_of(p, now) + 1;
    if (slots > 0 && ahead * service_ewma_ns_ / slots > budget) return ShedReason::Deadline;
  }
  if (queue_.full()) {
    QueueWaiter* evicted = queue_.evict_for(p);
    if (evicted == nullptr) return ShedReason::QueueFull;
    post(evicted, {.waiter = evicted, .reason = ShedReason::Priority});
  }
  w->inbox_ = inbox;
  queue_.push(w, p, now, budget_ns == 0 || budget_ns >= timeout ? 0 : now + budget_ns);
  ensure_timer();
  // A slot may have come free between the caller's acquire() and now.
  serve_queue();
  return std::nullopt;
}

void UpstreamPool::leave(QueueWaiter* w) {
  std::lock_guard lock(mu_);
  if (w->queued_) {
    queue_.remove(w);
    return;
  }
  if (w->inbox_ == nullptr) return;
  auto letter = w->inbox_->take(w);
  if (letter && letter->server != nullptr) {
    give_back(letter->server, Outcome::Neutral, 0, 0);
    serve_queue();
  }
}

size_t UpstreamPool::queue_length() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

uint32_t UpstreamPool::retry_after() const {
  std::lock_guard lock(mu_);
  return retry_after_locked();
}

uint32_t UpstreamPool::retry_after_locked() const {
  double seconds = drain_rate_ > 0 ? static_cast<double>(queue_.size() + 1) / drain_rate_
                                   : std::chrono::duration<double>(cfg_.queue.timeout).count();
  return static_cast<uint32_t>(std::clamp(std::ceil(seconds), 1.0, 60.0));
}

bool UpstreamPool::allow_retry() {
  std::lock_guard lock(mu_);
  // Never retry into a full queue: that load has nowhere to go.
  if (cfg_.queue.max_length > 0 && queue_.full()) return false;
  return budget_->try_withdraw(uv_hrtime());
}

PoolView UpstreamPool::view() const {
  std::lock_guard lock(mu_);
  PoolView v;
  v.servers.reserve(servers_.size());
  for (const auto& s : servers_) {
    v.servers.push_back({.address = s->address(),
                         .in_flight = s->in_flight(),
                         .limit = s->limit(),
                         .limit_configured = s->config().max_concurrent,
                         .limit_learned = s->learned_limit(),
                         .ejections = s->ejections(),
                         .healthy = s->load().healthy,
                         .health = s->health()});
  }
  v.queue_length = queue_.size();
  v.retry_budget = budget_->available(uv_hrtime());
  v.service_ns = service_ewma_ns_;
  v.drain_per_second = drain_rate_;
  v.retry_after = retry_after_locked();
  return v;
}

size_t UpstreamPool::size() const {
  std::lock_guard lock(mu_);
  return servers_.size();
}

const UpstreamServer& UpstreamPool::server(size_t i) const {
  std::lock_guard lock(mu_);
  return *servers_[i];
}

uint32_t UpstreamPool::in_flight(size_t i) const {
  std::lock_guard lock(mu_);
  return servers_[i]->in_flight();
}

uint32_t UpstreamPool::limit(size_t i) const {
  std::lock_guard lock(mu_);
  return servers_[i]->limit();
}

ServerHealth UpstreamPool::health(size_t i) const {
  std::lock_guard lock(mu_);
  return servers_[i]->health();
}

uint64_t UpstreamPool::service_time_ns() const {
  std::lock_guard lock(mu_);
  return service_ewma_ns_;
}

double UpstreamPool::drain_per_second() const {
  std::lock_guard lock(mu_);
  return drain_rate_;
}

// Called with the lock held, on any thread. libuv handles belong to the
// home loop: another thread asks it to start the timer.
void UpstreamPool::ensure_timer() {
  if (timer_running_ || !timer_ || stopped_) return;
  if (std::this_thread::get_id() != home_thread_) {
    if (kick_) uv_async_send(kick_.get());
    return;
  }
  timer_running_ = true;
  uv_timer_start(timer_.get(), &UpstreamPool::on_timer, kTickMs, kTickMs);
}

void UpstreamPool::on_kick(uv_async_t* a) {
  auto* self = static_cast<UpstreamPool*>(a->data);
  if (self == nullptr) return;
  std::lock_guard lock(self->mu_);
  self->ensure_timer();
}

void UpstreamPool::on_timer(uv_timer_t* t) {
  static_cast<UpstreamPool*>(t->data)->housekeeping();
}

void UpstreamPool::housekeeping() {
  std::lock_guard lock(mu_);
  const uint64_t now = uv_hrtime();
  bool busy = !queue_.empty();
  for (auto& s : servers_) {
    if (s->refresh(now)) busy = true;
  }
  ShedReason reason{};
  while (QueueWaiter* w = queue_.next_expired(now, reason)) {
    post(w, {.waiter = w, .reason = reason});
  }
  serve_queue();  // an ejection that ended or a slow start step frees slots
  drop_retired();
  if (!busy && queue_.empty() && retired_.empty()) {
    uv_timer_stop(timer_.get());
    timer_running_ = false;
  }
}

}  // namespace sluice::proxy
