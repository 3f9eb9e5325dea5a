// The client address as X-Forwarded-For and the access log carry it.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "proxy/listener.h"

namespace sluice::proxy {
namespace {

std::string ipv4_text(const char* address) {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, address, &a->sin_addr) == 1);
  std::string out;
  format_peer(peer_key(ss), false, out);
  return out;
}

TEST_CASE("peer address: IPv4 is written as inet_ntop writes it") {
  for (const char* a : {"0.0.0.0", "127.0.0.1", "10.1.20.100", "192.168.0.255", "255.255.255.255", "1.22.3.44"})
    CHECK(ipv4_text(a) == a);
}

TEST_CASE("peer address: IPv6, and the string's memory is reused") {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  a->sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, "2001:db8::8:800:200c:417a", &a->sin6_addr) == 1);
  std::string out;
  format_peer(peer_key(ss), true, out);
  CHECK(out == "2001:db8::8:800:200c:417a");
  const char* data = out.data();
  sockaddr_storage v4{};
  auto* b = reinterpret_cast<sockaddr_in*>(&v4);
  b->sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, "203.0.113.7", &b->sin_addr) == 1);
  format_peer(peer_key(v4), false, out);
  CHECK(out == "203.0.113.7");
  CHECK(out.data() == data);  // no new allocation: it fits the old capacity
}

}  // namespace
}  // namespace sluice::proxy
