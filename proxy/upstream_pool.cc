#include "proxy/upstream_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "proxy/health_checker.h"
#include "proxy/retry_budget.h"
#include "proxy/upstream_connection.h"

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

UpstreamPool::UpstreamPool(uv_loop_t* loop, const config::Upstream& cfg)
    : loop_(loop), conn_timers_(loop, &UpstreamConnection::on_timeout), cfg_(cfg),
      balancer_(make_balancer(cfg.balance, cfg.servers.size())),
      queue_(cfg.queue), budget_(make_budget(cfg.retries)) {
  for (const auto& s : cfg_.servers) {
    servers_.push_back(std::make_unique<UpstreamServer>(s, cfg_));
    servers_.back()->index = servers_.size() - 1;
  }
  if (auto t = UvHandle<uv_timer_t>::create(uv_timer_init, loop_)) {
    timer_ = std::move(*t);
    timer_->data = this;
  }
  start_checks();
}

UpstreamPool::~UpstreamPool() {
  stop_checks();
  close_idle();
}

void UpstreamPool::start_checks() {
  if (!cfg_.health_check) return;
  std::vector<bool> initial;
  for (const auto& s : servers_) initial.push_back(s->check_healthy());
  checker_ = HealthChecker::start(loop_, *cfg_.health_check, cfg_.servers, this, initial);
}

void UpstreamPool::stop_checks() {
  if (checker_ != nullptr) checker_->stop();
  checker_ = nullptr;
}

void UpstreamPool::on_health_change(size_t server, bool healthy, const char* reason) {
  if (server >= servers_.size()) return;
  UpstreamServer& s = *servers_[server];
  spdlog::warn("upstream {}: server {} is {} ({})", cfg_.name, s.address(),
               healthy ? "healthy" : "unhealthy", reason);
  s.set_check_result(healthy, uv_hrtime());
  ensure_timer();
  serve_queue();
}

UpstreamServer* UpstreamPool::find(const config::SocketAddress& a) {
  for (auto& s : servers_) {
    if (s && s->config().address.same_endpoint(a)) return s.get();
  }
  return nullptr;
}

void UpstreamPool::reconfigure(const config::Upstream& cfg) {
  const bool new_balance = cfg.balance != cfg_.balance || cfg.servers.size() != cfg_.servers.size();
  const uint64_t now = uv_hrtime();
  std::vector<std::unique_ptr<UpstreamServer>> next;
  for (const auto& sc : cfg.servers) {
    std::unique_ptr<UpstreamServer> kept;
    for (auto& s : servers_) {
      if (s && s->config().address.same_endpoint(sc.address)) {
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
    for (UpstreamConnection* c : std::exchange(s->idle(), {})) {
      --idle_total_;
      c->abort();
    }
    if (s->in_flight() > 0) retired_.push_back(std::move(s));
  }
  servers_ = std::move(next);
  std::erase_if(retired_, [](const auto& s) { return s->in_flight() == 0; });

  cfg_ = cfg;
  queue_.configure(cfg_.queue);
  if (cfg.retries.budget_percent != cfg_.retries.budget_percent ||
      cfg.retries.budget_min_per_second != cfg_.retries.budget_min_per_second) {
    budget_ = make_budget(cfg.retries);  // what was earned so far is forgotten: rare
  }
  if (new_balance) balancer_ = make_balancer(cfg_.balance, cfg_.servers.size());
  // The checker indexes servers by position, which a reload may change:
  // start it afresh, carrying each server's state.
  stop_checks();
  start_checks();
  while (idle_total_ > cfg_.keepalive.max_idle) {
    for (auto& s : servers_) {
      if (!s->idle().empty() && idle_total_ > cfg_.keepalive.max_idle) {
        UpstreamConnection* c = s->idle().front();
        s->idle().erase(s->idle().begin());
        --idle_total_;
        c->abort();
      }
    }
  }
  ensure_timer();
  serve_queue();  // raised limits may admit queued requests now
}

bool UpstreamPool::quiet() const {
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

UpstreamServer* UpstreamPool::acquire(TriedSet tried) {
  auto pick = balancer_->pick(snapshot(), tried);
  if (!pick) return nullptr;
  UpstreamServer* s = servers_[*pick].get();
  s->take_slot();
  return s;
}

size_t UpstreamPool::healthy_count() const {
  size_t n = 0;
  for (const auto& s : servers_) n += s->load().healthy ? 1 : 0;
  return n;
}

bool UpstreamPool::all_down() const {
  for (const auto& s : servers_) {
    if (s->load().healthy) return false;
  }
  return true;
}

void UpstreamPool::release(UpstreamServer* s, Outcome outcome, uint64_t rtt_ns,
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
  if (s->index == UpstreamServer::kRetired) {
    if (s->in_flight() == 0) {
      std::erase_if(retired_, [s](const auto& r) { return r.get() == s; });
    }
    return;
  }
  serve_queue();
}

void UpstreamPool::serve_queue() {
  // A woken waiter takes the free slot (or finds none and joins again);
  // stop as soon as no slot is left. A waiter may finish synchronously and
  // release, which would re-enter: the outer pass carries on instead.
  if (serving_) return;
  serving_ = true;
  const uint64_t now = uv_hrtime();
  while (!queue_.empty() && balancer_->pick(snapshot(), 0).has_value()) {
    QueueWaiter* w = queue_.pop(now);
    w->on_slot_available();
  }
  serving_ = false;
  if (!queue_.empty()) ensure_timer();
}

std::optional<ShedReason> UpstreamPool::admit(QueueWaiter* w, config::Priority p, uint64_t budget_ns) {
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
    evicted->on_shed(ShedReason::Priority);
  }
  queue_.push(w, p, now, budget_ns == 0 || budget_ns >= timeout ? 0 : now + budget_ns);
  ensure_timer();
  return std::nullopt;
}

uint32_t UpstreamPool::retry_after() const {
  double seconds = drain_rate_ > 0 ? static_cast<double>(queue_.size() + 1) / drain_rate_
                                   : std::chrono::duration<double>(cfg_.queue.timeout).count();
  return static_cast<uint32_t>(std::clamp(std::ceil(seconds), 1.0, 60.0));
}

void UpstreamPool::count_request() { budget_->deposit(uv_hrtime()); }

bool UpstreamPool::allow_retry() {
  // Never retry into a full queue: that load has nowhere to go.
  if (cfg_.queue.max_length > 0 && queue_.full()) return false;
  return budget_->try_withdraw(uv_hrtime());
}

uint64_t UpstreamPool::retry_budget_available() { return budget_->available(uv_hrtime()); }

void UpstreamPool::ensure_timer() {
  if (timer_running_ || !timer_) return;
  timer_running_ = true;
  uv_timer_start(timer_.get(), &UpstreamPool::on_timer, kTickMs, kTickMs);
}

void UpstreamPool::on_timer(uv_timer_t* t) {
  static_cast<UpstreamPool*>(t->data)->housekeeping();
}

void UpstreamPool::housekeeping() {
  const uint64_t now = uv_hrtime();
  bool busy = !queue_.empty();
  for (auto& s : servers_) {
    if (s->refresh(now)) busy = true;
  }
  ShedReason reason{};
  while (QueueWaiter* w = queue_.next_expired(now, reason)) w->on_shed(reason);
  serve_queue();  // an ejection that ended or a slow start step frees slots
  if (!busy && queue_.empty()) {
    uv_timer_stop(timer_.get());
    timer_running_ = false;
  }
}

UpstreamConnection* UpstreamPool::take_idle(UpstreamServer* s) {
  auto& list = s->idle();
  if (list.empty()) return nullptr;
  UpstreamConnection* c = list.back();
  list.pop_back();
  --idle_total_;
  return c;
}

bool UpstreamPool::put_idle(UpstreamConnection* conn) {
  UpstreamServer* s = conn->server();
  if (idle_total_ >= cfg_.keepalive.max_idle || s->index == UpstreamServer::kRetired) return false;
  s->idle().push_back(conn);
  ++idle_total_;
  return true;
}

void UpstreamPool::forget_idle(UpstreamConnection* conn) {
  auto& list = conn->server()->idle();
  auto it = std::find(list.begin(), list.end(), conn);
  if (it == list.end()) return;
  list.erase(it);
  --idle_total_;
}

void UpstreamPool::close_idle() {
  for (auto& s : servers_) {
    for (UpstreamConnection* c : std::exchange(s->idle(), {})) {
      --idle_total_;
      c->abort();
    }
  }
}

}  // namespace sluice::proxy
