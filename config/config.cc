#include "config/config.h"

#include <arpa/inet.h>

#include <cstring>

namespace sluice::config {
namespace {

// Copies rather than casts: sockaddr_storage is only layout-compatible.
template <class T>
T as(const sockaddr_storage& storage) {
  T out;
  std::memcpy(&out, &storage, sizeof out);
  return out;
}

}  // namespace

bool SocketAddress::same_endpoint(const SocketAddress& other) const {
  if (sockaddr.ss_family != other.sockaddr.ss_family) return false;
  if (sockaddr.ss_family == AF_INET) {
    auto a = as<sockaddr_in>(sockaddr);
    auto b = as<sockaddr_in>(other.sockaddr);
    return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
  }
  if (sockaddr.ss_family == AF_INET6) {
    auto a = as<sockaddr_in6>(sockaddr);
    auto b = as<sockaddr_in6>(other.sockaddr);
    return a.sin6_port == b.sin6_port && a.sin6_scope_id == b.sin6_scope_id &&
           std::memcmp(&a.sin6_addr, &b.sin6_addr, sizeof a.sin6_addr) == 0;
  }
  return false;  // unresolved (AF_UNSPEC) addresses are never the same endpoint
}

bool SocketAddress::is_wildcard() const {
  if (sockaddr.ss_family == AF_INET) return as<sockaddr_in>(sockaddr).sin_addr.s_addr == htonl(INADDR_ANY);
  if (sockaddr.ss_family == AF_INET6) {
    const in6_addr a = as<sockaddr_in6>(sockaddr).sin6_addr;
    return std::memcmp(&a, &in6addr_any, sizeof a) == 0;
  }
  return false;
}

bool SocketAddress::overlaps(const SocketAddress& other) const {
  if (same_endpoint(other)) return true;
  return port == other.port && sockaddr.ss_family == other.sockaddr.ss_family &&
         (is_wildcard() || other.is_wildcard());
}

const Upstream* Config::find_upstream(std::string_view name) const {
  for (const auto& upstream : upstreams)
    if (upstream.name == name) return &upstream;
  return nullptr;
}

std::string_view to_string(Balance b) {
  switch (b) {
    case Balance::RoundRobin: return "round_robin";
    case Balance::LeastConnections: return "least_connections";
    case Balance::RandomTwo: return "random_two";
  }
  return "?";
}

std::string_view to_string(Priority p) {
  switch (p) {
    case Priority::High: return "high";
    case Priority::Normal: return "normal";
    case Priority::Low: return "low";
  }
  return "?";
}

std::string_view to_string(QueueMode m) {
  switch (m) {
    case QueueMode::Adaptive: return "adaptive";
    case QueueMode::Fifo: return "fifo";
  }
  return "?";
}

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "?";
}

std::string_view to_string(EncodedSlashes e) {
  switch (e) {
    case EncodedSlashes::Reject: return "reject";
    case EncodedSlashes::Decode: return "decode";
    case EncodedSlashes::Keep: return "keep";
  }
  return "?";
}

std::string_view to_string(AccessLogFormat f) {
  switch (f) {
    case AccessLogFormat::Combined: return "combined";
    case AccessLogFormat::Json: return "json";
  }
  return "?";
}

}  // namespace sluice::config
