#include "proxy/upstream_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "proxy/adaptive_limit.h"

namespace sluice::proxy {

namespace {

uint64_t to_ns(config::Duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace

const char* to_string(ServerHealth h) {
  switch (h) {
    case ServerHealth::Healthy: return "healthy";
    case ServerHealth::Ejected: return "ejected";
    case ServerHealth::CheckFailed: return "check_failed";
  }
  return "?";
}

UpstreamServer::UpstreamServer(const config::Server& cfg, const config::Upstream& up)
    : endpoint_(cfg.address) {
  configure(cfg, up);
}

UpstreamServer::~UpstreamServer() = default;

void UpstreamServer::configure(const config::Server& cfg, const config::Upstream& up) {
  const bool was_adaptive = adaptive_ != nullptr;
  cfg_ = cfg;
  passive_ = up.passive_health;
  slow_start_ns_ = to_ns(up.slow_start);
  if (cfg_.adaptive && !was_adaptive) {
    adaptive_ = std::make_unique<AdaptiveLimit>(AdaptiveLimitOptions{.max = cfg_.max_concurrent});
  } else if (cfg_.adaptive) {
    adaptive_->set_bounds(1, cfg_.max_concurrent);
  } else {
    adaptive_.reset();
  }
  load_.weight = cfg_.weight;
  refresh(0);
}

uint32_t UpstreamServer::learned_limit() const { return adaptive_ ? adaptive_->learned() : 0; }

void UpstreamServer::on_success(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight_at_start) {
  failures_ = 0;
  if (ejections_ > 0 && now_ns - healthy_since_ns_ > to_ns(passive_.max_ejection)) ejections_ = 0;
  if (adaptive_) {
    adaptive_->on_sample(now_ns, rtt_ns, in_flight_at_start, true);
    // Near capacity the estimate moves by one or two from window to
    // window: log the moves that matter.
    const uint32_t now_learned = adaptive_->learned();
    const uint32_t step = std::max<uint32_t>(2, logged_limit_ / 10);
    if (now_learned >= logged_limit_ + step || now_learned + step <= logged_limit_) {
      spdlog::info("upstream server {}: learned limit {} -> {}", address(), logged_limit_, now_learned);
      logged_limit_ = now_learned;
    }
  }
  if (overload_cap_ > 0 && ++recover_count_ >= overload_cap_) {
    recover_count_ = 0;
    ++overload_cap_;
    uint32_t base = adaptive_ ? adaptive_->limit() : cfg_.max_concurrent;
    if (base != 0 && overload_cap_ >= base) overload_cap_ = 0;
  }
  refresh(now_ns);
}

void UpstreamServer::on_overload(uint64_t now_ns, uint64_t rtt_ns, uint32_t in_flight_at_start) {
  if (adaptive_) {
    uint32_t before = adaptive_->learned();
    if (adaptive_->on_overload(now_ns, rtt_ns, in_flight_at_start) && adaptive_->learned() != before) {
      spdlog::info("upstream server {}: busy, learned limit {} -> {}", address(), before,
                   adaptive_->learned());
    }
  } else {
    // The app turned a request away while holding the others still in
    // flight (the pool has already taken the refused one off): that many
    // is what it can hold now.
    uint32_t cap = std::max<uint32_t>(1, load_.in_flight);
    if (overload_cap_ == 0 || cap < overload_cap_) {
      overload_cap_ = cap;
      recover_count_ = 0;
      spdlog::info("upstream server {}: busy, limit lowered to {}", address(), cap);
    }
  }
  refresh(now_ns);
}

bool UpstreamServer::on_failure(uint64_t now_ns) {
  if (passive_.failures == 0 || ejected_until_ns_ != 0) return false;
  if (++failures_ < passive_.failures) return false;
  failures_ = 0;
  // Each ejection in a row doubles the time out, up to max_ejection.
  uint64_t out = to_ns(passive_.ejection);
  for (uint32_t i = 0; i < ejections_ && out < to_ns(passive_.max_ejection); ++i) out *= 2;
  out = std::min(out, to_ns(passive_.max_ejection));
  ++ejections_;
  ++total_ejections_;
  ejected_until_ns_ = now_ns + out;
  spdlog::warn("upstream server {}: ejected for {} ms after {} failures in a row", address(),
               out / 1'000'000, passive_.failures);
  refresh(now_ns);
  return true;
}

void UpstreamServer::set_check_result(bool healthy, uint64_t now_ns) {
  if (healthy == check_healthy_) return;
  check_healthy_ = healthy;
  if (healthy) start_ramp(now_ns);
  refresh(now_ns);
}

void UpstreamServer::start_ramp(uint64_t now_ns) {
  healthy_since_ns_ = now_ns;
  ramp_since_ns_ = slow_start_ns_ > 0 ? std::max<uint64_t>(now_ns, 1) : 0;
}

ServerHealth UpstreamServer::health() const {
  if (!check_healthy_) return ServerHealth::CheckFailed;
  if (ejected_until_ns_ != 0) return ServerHealth::Ejected;
  return ServerHealth::Healthy;
}

bool UpstreamServer::refresh(uint64_t now_ns) {
  bool changing = false;
  if (ejected_until_ns_ != 0) {
    if (now_ns >= ejected_until_ns_) {
      ejected_until_ns_ = 0;
      // On probation: one more failure ejects it again, for longer.
      failures_ = passive_.failures > 0 ? passive_.failures - 1 : 0;
      spdlog::info("upstream server {}: back in use after ejection", address());
      start_ramp(now_ns);
    } else {
      changing = true;
    }
  }
  load_.healthy = check_healthy_ && ejected_until_ns_ == 0;

  uint32_t cap = adaptive_ ? adaptive_->limit() : cfg_.max_concurrent;
  if (overload_cap_ != 0) cap = cap == 0 ? overload_cap_ : std::min(cap, overload_cap_);
  uint32_t weight = cfg_.weight;
  if (ramp_since_ns_ != 0) {
    uint64_t elapsed = now_ns > ramp_since_ns_ ? now_ns - ramp_since_ns_ : 0;
    if (elapsed >= slow_start_ns_) {
      ramp_since_ns_ = 0;
    } else {
      // Linear ramp from a tenth: a server that just came back gets a
      // little traffic at once (so it can prove itself) and all of it only
      // at the end of the window.
      double share = 0.1 + 0.9 * static_cast<double>(elapsed) / static_cast<double>(slow_start_ns_);
      if (cap != 0) cap = std::max<uint32_t>(1, static_cast<uint32_t>(cap * share));
      weight = std::max<uint32_t>(1, static_cast<uint32_t>(weight * share));
      changing = true;
    }
  }
  load_.max_concurrent = cap;
  load_.weight = weight;
  return changing;
}

}  // namespace sluice::proxy
