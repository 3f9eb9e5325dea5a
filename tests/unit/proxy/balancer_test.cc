#include "proxy/balancer.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace sluice::proxy {
namespace {

std::string picks(Balancer& b, std::vector<ServerLoad>& servers, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    auto p = b.pick(servers, 0);
    out += p ? static_cast<char>('a' + *p) : '-';
  }
  return out;
}

TEST_CASE("round_robin: equal weights alternate", "[balancer]") {
  std::vector<ServerLoad> s(3);
  auto b = make_balancer(config::Balance::RoundRobin, s.size());
  CHECK(picks(*b, s, 6) == "abcabc");
}

TEST_CASE("round_robin: weights interleave smoothly", "[balancer]") {
  std::vector<ServerLoad> s(3);
  s[0].weight = 5;
  auto b = make_balancer(config::Balance::RoundRobin, s.size());
  // nginx's smooth weighted round robin for 5:1:1.
  CHECK(picks(*b, s, 7) == "aabacaa");
}

TEST_CASE("round_robin: a server at its cap is never picked", "[balancer]") {
  std::vector<ServerLoad> s(2);
  s[0].max_concurrent = 1;
  s[0].in_flight = 1;
  auto b = make_balancer(config::Balance::RoundRobin, s.size());
  CHECK(picks(*b, s, 4) == "bbbb");
  s[1].max_concurrent = 3;
  s[1].in_flight = 3;
  CHECK_FALSE(b->pick(s, 0).has_value());
}

TEST_CASE("round_robin: tried servers are skipped, unhealthy ones too", "[balancer]") {
  std::vector<ServerLoad> s(3);
  s[2].healthy = false;
  auto b = make_balancer(config::Balance::RoundRobin, s.size());
  CHECK(b->pick(s, TriedSet{1}) == std::optional<size_t>(1));
  CHECK_FALSE(b->pick(s, TriedSet{0b011}).has_value());
}

TEST_CASE("least_connections: fewest in flight relative to weight", "[balancer]") {
  std::vector<ServerLoad> s(3);
  s[0].in_flight = 4;
  s[1].in_flight = 2;
  s[2].in_flight = 3;
  auto b = make_balancer(config::Balance::LeastConnections, s.size());
  CHECK(b->pick(s, 0) == std::optional<size_t>(1));
  s[2].weight = 2;  // 3/2 < 2/1
  CHECK(b->pick(s, 0) == std::optional<size_t>(2));
}

TEST_CASE("least_connections: ties rotate instead of piling on the first", "[balancer]") {
  std::vector<ServerLoad> s(3);
  auto b = make_balancer(config::Balance::LeastConnections, s.size());
  CHECK(picks(*b, s, 6) == "abcabc");
}

TEST_CASE("least_connections: never a server at its cap", "[balancer]") {
  std::vector<ServerLoad> s(2);
  s[0].max_concurrent = 2;
  s[0].in_flight = 2;
  s[1].in_flight = 50;
  auto b = make_balancer(config::Balance::LeastConnections, s.size());
  CHECK(b->pick(s, 0) == std::optional<size_t>(1));
}

}  // namespace
}  // namespace sluice::proxy
