#include "config/units.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>

using namespace sluice::config;
using namespace std::chrono_literals;

TEST_CASE("parse_duration accepts ms, s, m and h") {
  CHECK(*parse_duration("250ms") == 250ms);
  CHECK(*parse_duration("5s") == 5s);
  CHECK(*parse_duration("2m") == 2min);
  CHECK(*parse_duration("1h") == 1h);
  CHECK(*parse_duration("0s") == 0ms);
}

TEST_CASE("format_duration uses the largest exact unit") {
  CHECK(format_duration(10000ms) == "10s");
  CHECK(format_duration(120000ms) == "2m");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(7200s) == "2h");
  CHECK(format_duration(0ms) == "0s");
}

TEST_CASE("parse_duration refuses a bare number and says to add a unit") {
  auto result = parse_duration("30");
  REQUIRE_FALSE(result.ok());
  CHECK(result.error() == "duration \"30\" has no unit; add one of ms, s, m or h, e.g. \"30s\"");
}

TEST_CASE("parse_duration refuses garbage, signs, fractions and unknown units") {
  const std::string hint = "expected a whole number and a unit (ms, s, m or h), e.g. \"250ms\" or \"5s\"";
  CHECK(parse_duration("fast").error() == "invalid duration \"fast\"; " + hint);
  CHECK(parse_duration("-5s").error() == "invalid duration \"-5s\"; " + hint);
  CHECK(parse_duration("1.5s").error() == "invalid duration \"1.5s\"; " + hint);
  CHECK(parse_duration("5sec").error() == "invalid duration \"5sec\"; " + hint);
  CHECK(parse_duration("5 s").error() == "invalid duration \"5 s\"; " + hint);
  CHECK(parse_duration("").error() == "empty duration; " + hint);
}

TEST_CASE("parse_duration checks overflow") {
  CHECK(parse_duration("99999999999999999999ms").error() == "duration \"99999999999999999999ms\" is too large");
  CHECK(parse_duration("9000000000000000h").error() == "duration \"9000000000000000h\" is too large");
  CHECK(parse_duration("9223372036854775807ms").ok());
}

TEST_CASE("parse_size accepts bytes and binary units") {
  CHECK(*parse_size("512") == 512);
  CHECK(*parse_size("0") == 0);
  CHECK(*parse_size("512B") == 512);
  CHECK(*parse_size("16KiB") == 16384);
  CHECK(*parse_size("10MiB") == 10485760);
  CHECK(*parse_size("2GiB") == 2147483648);
}

TEST_CASE("format_size uses the largest exact binary unit") {
  CHECK(format_size(16384) == "16KiB");
  CHECK(format_size(10485760) == "10MiB");
  CHECK(format_size(1024 * MiB) == "1GiB");
  CHECK(format_size(1000) == "1000");
  CHECK(format_size(1536) == "1536");
  CHECK(format_size(0) == "0");
}

TEST_CASE("parse_size refuses ambiguous units, naming the accepted ones") {
  for (const char* text : {"16K", "16KB", "16kb", "10M", "10MB", "1G", "1GB", "16kib"}) {
    auto result = parse_size(text);
    REQUIRE_FALSE(result.ok());
    CHECK_THAT(result.error(), Catch::EndsWith("; use B, KiB, MiB or GiB (1KiB = 1024 bytes)"));
  }
  CHECK(parse_size("16KB").error() ==
        "unknown unit \"KB\" in size \"16KB\"; use B, KiB, MiB or GiB (1KiB = 1024 bytes)");
}

TEST_CASE("parse_size refuses garbage and checks overflow") {
  CHECK(parse_size("big").error() ==
        "invalid size \"big\"; expected a whole number of bytes, e.g. \"512\" or \"16KiB\"");
  CHECK(parse_size("-1").error() == "invalid size \"-1\"; expected a whole number of bytes, e.g. \"512\" or \"16KiB\"");
  CHECK(parse_size("99999999999999999999").error() == "size \"99999999999999999999\" is too large");
  CHECK(parse_size("17179869184GiB").error() == "size \"17179869184GiB\" is too large");
}

TEST_CASE("parse_address reads an IPv4 literal") {
  auto addr = parse_address("127.0.0.1:8080");
  REQUIRE(addr.ok());
  CHECK(addr->text == "127.0.0.1:8080");
  CHECK(addr->host == "127.0.0.1");
  CHECK(addr->port == 8080);
  REQUIRE(addr->sockaddr.ss_family == AF_INET);
  CHECK(addr->sockaddr_len == sizeof(sockaddr_in));
  const auto* in = reinterpret_cast<const sockaddr_in*>(addr->sa());
  CHECK(ntohs(in->sin_port) == 8080);
  CHECK(ntohl(in->sin_addr.s_addr) == 0x7f000001);
}

TEST_CASE("parse_address reads a bracketed IPv6 literal") {
  auto addr = parse_address("[::1]:9000");
  REQUIRE(addr.ok());
  CHECK(addr->host == "::1");
  CHECK(addr->port == 9000);
  REQUIRE(addr->sockaddr.ss_family == AF_INET6);
  CHECK(addr->sockaddr_len == sizeof(sockaddr_in6));
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr->sa());
  CHECK(ntohs(in6->sin6_port) == 9000);
  CHECK(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
}

TEST_CASE("parse_address resolves a host name") {
  auto addr = parse_address("localhost:80");
  REQUIRE(addr.ok());
  CHECK(addr->host == "localhost");
  CHECK((addr->sockaddr.ss_family == AF_INET || addr->sockaddr.ss_family == AF_INET6));
}

TEST_CASE("parse_address reports a missing port") {
  CHECK(parse_address("localhost").error() == "expected host:port, got \"localhost\"");
  CHECK(parse_address("localhost:").error() == "expected host:port, got \"localhost:\"");
  CHECK(parse_address("[::1]").error() == "expected host:port, got \"[::1]\"");
}

TEST_CASE("parse_address reports a bad port") {
  CHECK(parse_address("127.0.0.1:http").error() == "invalid port \"http\" in \"127.0.0.1:http\"");
  CHECK(parse_address("127.0.0.1:-1").error() == "invalid port \"-1\" in \"127.0.0.1:-1\"");
  CHECK(parse_address("127.0.0.1:65536").error() == "port 65536 is out of range 0..65535 in \"127.0.0.1:65536\"");
}

TEST_CASE("parse_address accepts port 0") {
  auto addr = parse_address("127.0.0.1:0");
  REQUIRE(addr.ok());
  CHECK(addr->port == 0);
}

TEST_CASE("parse_address reports unbracketed IPv6, bad IPv6 and an empty host") {
  CHECK(parse_address("::1:8080").error() == "IPv6 addresses need brackets, e.g. \"[::1]:8080\"; got \"::1:8080\"");
  CHECK(parse_address("[zz::1]:80").error() == "invalid IPv6 address \"zz::1\" in \"[zz::1]:80\"");
  CHECK(parse_address(":8080").error() == "missing host in \":8080\"; e.g. \"0.0.0.0:8080\" for every interface");
}

TEST_CASE("parse_address reports a host that does not resolve") {
  auto addr = parse_address("no-such-host.invalid:80");
  REQUIRE_FALSE(addr.ok());
  CHECK_THAT(addr.error(), Catch::StartsWith("cannot resolve host \"no-such-host.invalid\": "));
}

TEST_CASE("same_endpoint compares resolved addresses, not spellings") {
  auto a = *parse_address("127.0.0.1:8080");
  CHECK(a.same_endpoint(*parse_address("127.0.0.1:8080")));
  CHECK_FALSE(a.same_endpoint(*parse_address("127.0.0.1:8081")));
  CHECK_FALSE(a.same_endpoint(*parse_address("127.0.0.2:8080")));
  CHECK_FALSE(a.same_endpoint(*parse_address("[::1]:8080")));
  CHECK(parse_address("[::1]:8080")->same_endpoint(*parse_address("[0:0::1]:8080")));
}

TEST_CASE("overlaps: the same endpoint, or a wildcard of the same family on the same port") {
  auto any4 = *parse_address("0.0.0.0:8080");
  CHECK(any4.overlaps(*parse_address("127.0.0.1:8080")));
  CHECK(parse_address("127.0.0.1:8080")->overlaps(any4));
  CHECK(any4.overlaps(any4));
  CHECK_FALSE(any4.overlaps(*parse_address("127.0.0.1:8081")));
  CHECK_FALSE(parse_address("127.0.0.1:8080")->overlaps(*parse_address("127.0.0.2:8080")));
  auto any6 = *parse_address("[::]:8080");
  CHECK(any6.overlaps(*parse_address("[::1]:8080")));
  CHECK_FALSE(any6.overlaps(*parse_address("[::1]:9090")));
  // Whether [::] takes IPv4 too is the host's net.ipv6.bindv6only: bind() says.
  CHECK_FALSE(any6.overlaps(any4));
  CHECK(any4.is_wildcard());
  CHECK(any6.is_wildcard());
  CHECK_FALSE(parse_address("127.0.0.1:8080")->is_wildcard());
  CHECK_FALSE(parse_address("[::1]:8080")->is_wildcard());
}
