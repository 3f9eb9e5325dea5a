// The access log's lines, byte for byte, as they land in a real file:
// combined and json formats, escaping, the 499 of a client that left, and a
// `path: off` log that takes lines and writes nothing.
#include "proxy/access_log.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>
#include "tests/support/temp_file.h"

using sluice::test::read_file;

namespace {

using sluice::config::AccessLogFormat;
using sluice::proxy::AccessEntry;
using sluice::proxy::AccessLog;

std::string temp_path(const char* tag) {
  return "/tmp/sluice-access-log-test-" + std::string(tag) + "-" + std::to_string(::getpid()) +
         ".log";
}

// Writes `entries` through a log of `format` and returns the file's text
// once the log is gone (its destructor writes everything out).
std::string log_lines(AccessLogFormat format, const std::vector<AccessEntry>& entries) {
  const std::string path = temp_path(format == AccessLogFormat::Json ? "json" : "combined");
  std::filesystem::remove(path);
  {
    sluice::config::AccessLog cfg;
    cfg.path = path;
    cfg.format = format;
    auto log = AccessLog::open(cfg);
    REQUIRE(log);
    REQUIRE((*log)->enabled());
    for (const auto& e : entries) (*log)->log(e);
    CHECK((*log)->dropped() == 0);
  }
  std::string text = read_file(path);
  std::filesystem::remove(path);
  return text;
}

AccessEntry full_entry() {
  AccessEntry e;
  e.client_ip = "10.1.2.3";
  e.method = "GET";
  e.target = "/a?b=\"c\"";
  e.http_minor = 1;
  e.status = 200;
  e.body_bytes = 1234;
  e.referer = "http://ref.example/";
  e.user_agent = "agent \\ \x01";
  e.route = "app";
  e.upstream = "127.0.0.1:5001";
  e.duration_us = 987;
  return e;
}

}  // namespace

TEST_CASE("access log: combined lines, with nginx's \\xHH escapes", "[access_log]") {
  AccessEntry bare;  // the client left before sending anything useful
  bare.method = "POST";
  bare.target = "/";
  bare.http_minor = 0;
  std::string text = log_lines(AccessLogFormat::Combined, {full_entry(), bare});
  INFO(text);
  std::smatch m;
  const std::regex line(
      R"(10\.1\.2\.3 - - (\[\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]) )"
      R"("GET /a\?b=\\x22c\\x22 HTTP/1\.1" 200 1234 "http://ref\.example/" "agent \\x5C \\x01"\n)"
      R"(- - - \[[^\]]+\] "POST / HTTP/1\.0" 499 0 "-" "-"\n)");
  CHECK(std::regex_match(text, m, line));
}

TEST_CASE("access log: json lines, with \\u00XX escapes and empty fields", "[access_log]") {
  AccessEntry bare;
  bare.method = "GET";
  bare.target = "/x";
  bare.status = 503;
  std::string text = log_lines(AccessLogFormat::Json, {full_entry(), bare});
  INFO(text);
  const std::regex line(
      R"(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}","client":"10\.1\.2\.3","method":"GET",)"
      R"("target":"/a\?b=\\"c\\"","protocol":"HTTP/1\.1","status":200,"bytes":1234,)"
      R"("duration_us":987,"route":"app","upstream":"127\.0\.0\.1:5001",)"
      R"("referer":"http://ref\.example/","user_agent":"agent \\\\ \\u0001"\}\n)"
      R"(\{"time":"[^"]+","client":"","method":"GET","target":"/x","protocol":"HTTP/1\.1",)"
      R"("status":503,"bytes":0,"duration_us":0,"route":"","upstream":"","referer":"",)"
      R"("user_agent":""\}\n)");
  CHECK(std::regex_match(text, line));
}

TEST_CASE("access log: long lines are written whole", "[access_log]") {
  const std::string target = "/" + std::string(20000, 'q');
  AccessEntry e = full_entry();
  e.target = target;
  std::string text = log_lines(AccessLogFormat::Json, {e, e});
  CHECK(text.size() > 40000);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);
  CHECK(text.find("\"target\":\"" + target + "\",") != std::string::npos);
}

TEST_CASE("access log: `off` takes lines and writes nothing", "[access_log]") {
  sluice::config::AccessLog cfg;
  cfg.path = "off";
  auto log = AccessLog::open(cfg);
  REQUIRE(log);
  CHECK(!(*log)->enabled());
  (*log)->log(full_entry());
  (*log)->reopen();
  CHECK((*log)->dropped() == 0);
}

TEST_CASE("access log: an unopenable file is an error naming it", "[access_log]") {
  sluice::config::AccessLog cfg;
  cfg.path = "/nonexistent-dir/access.log";
  auto log = AccessLog::open(cfg);
  REQUIRE(!log);
  CHECK(log.error() == "access log: /nonexistent-dir/access.log: No such file or directory");
}
