// The access log of the real binary: combined and json lines written to a
// file, and SIGUSR1 reopening it after logrotate has moved it away.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_file.h"

using namespace sluice::itest;
using namespace sluice::test;

namespace {

std::string temp_log_path(const char* tag) {
  return "/tmp/sluice-access-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".log";
}

// The writer is another thread: wait until `n` lines are in the file.
std::string wait_for_lines(const std::string& path, size_t n) {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text = read_file(path);
    if (count_of(text, "\n") >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return text;
}

std::string config_with_log(const std::string& path, const std::string& format) {
  std::string y = simple_config();
  std::string off = "access_log: { path: \"off\" }";
  y.replace(y.find(off), off.size(),
            "access_log: { path: \"" + path + "\", format: " + format + " }");
  return y;
}

TEST_CASE("access log: combined lines with status, bytes, referer and agent", "[access_log]") {
  std::string path = temp_log_path("combined");
  std::remove(path.c_str());
  {
    ProxyFixture f(config_with_log(path, "combined"));
    auto r = request(f.port(), "GET", "/bytes?n=10",
                     {{"Referer", "http://ref.example/"}, {"User-Agent", "probe \"1\""}});
    REQUIRE(r.status == 200);
    auto nf = request(f.port(), "GET", "/status?code=404", {});
    REQUIRE(nf.status == 404);
    std::string text = wait_for_lines(path, 2);
    INFO(text);
    CHECK(text.find("127.0.0.1 - - [") == 0);
    CHECK(text.find("\"GET /bytes?n=10 HTTP/1.1\" 200 10 \"http://ref.example/\" "
                    "\"probe \\x221\\x22\"\n") != std::string::npos);
    CHECK(text.find("\"GET /status?code=404 HTTP/1.1\" 404 0 \"-\"") != std::string::npos);
  }
  std::remove(path.c_str());
}

TEST_CASE("access log: json lines name the route and the upstream server", "[access_log]") {
  std::string path = temp_log_path("json");
  std::remove(path.c_str());
  {
    ProxyFixture f(config_with_log(path, "json"));
    auto r = request(f.port(), "GET", "/", {});
    REQUIRE(r.status == 200);
    std::string text = wait_for_lines(path, 1);
    INFO(text);
    CHECK(text.rfind("{\"time\":\"", 0) == 0);
    CHECK(text.find("\"method\":\"GET\",\"target\":\"/\",\"protocol\":\"HTTP/1.1\","
                    "\"status\":200,\"bytes\":100,") != std::string::npos);
    CHECK(text.find("\"route\":\"all\",\"upstream\":\"127.0.0.1:" +
                    std::to_string(f.backend().port()) + "\"") != std::string::npos);
  }
  std::remove(path.c_str());
}

TEST_CASE("access log: SIGUSR1 reopens the file after a rotation", "[access_log]") {
  std::string path = temp_log_path("rotate");
  std::string rotated = path + ".1";
  std::remove(path.c_str());
  std::remove(rotated.c_str());
  {
    ProxyFixture f(config_with_log(path, "combined"));
    REQUIRE(request(f.port(), "GET", "/?before", {}).status == 200);
    REQUIRE(count_of(wait_for_lines(path, 1), "\n") == 1);

    REQUIRE(std::rename(path.c_str(), rotated.c_str()) == 0);  // what logrotate does
    f.sluice().process().signal(SIGUSR1);
    REQUIRE(f.sluice().process().wait_for_line("reopening log files", std::chrono::seconds(5)));
    REQUIRE(request(f.port(), "GET", "/?after", {}).status == 200);

    std::string now = wait_for_lines(path, 1);
    CHECK(now.find("/?after") != std::string::npos);
    CHECK(now.find("/?before") == std::string::npos);
    std::string old = read_file(rotated);
    CHECK(old.find("/?before") != std::string::npos);
    CHECK(old.find("/?after") == std::string::npos);
  }
  std::remove(path.c_str());
  std::remove(rotated.c_str());
}

// A reload that names another file replaces the log; the old one writes
// out every line it still held before it goes, so no request is unlogged.
TEST_CASE("access log: a reload to another file loses no line of the old one", "[access_log]") {
  std::string first = temp_log_path("reload-a");
  std::string second = temp_log_path("reload-b");
  std::remove(first.c_str());
  std::remove(second.c_str());
  {
    ProxyFixture f(config_with_log(first, "combined"));
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::thread client([&] {
      std::string error;
      UniqueFd fd = connect_tcp("127.0.0.1", f.port(), std::chrono::seconds(2), &error);
      while (!stop.load() && fd.valid()) {
        send_all(fd.get(), "GET /?n HTTP/1.1\r\nHost: x\r\n\r\n");
        (read_response(fd.get(), std::chrono::seconds(5)).status == 200 ? ok : failed)++;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::string yaml = f.yaml();
    yaml.replace(yaml.find(first), first.size(), second);
    f.sluice().rewrite_config(yaml);
    f.sluice().process().signal(SIGHUP);
    const bool reloaded =
        f.sluice().process().wait_for_line("reload: .* is in effect", std::chrono::seconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    client.join();
    INFO(f.sluice().process().output());
    REQUIRE(reloaded);
    REQUIRE(failed.load() == 0);
    // The old log writes out what it held in the background (the loop does
    // not wait on its disk): soon the two files hold every request.
    size_t in_first = 0, in_second = 0;
    for (int i = 0; i < 400; ++i) {
      in_first = count_of(read_file(first), "\n");
      in_second = count_of(read_file(second), "\n");
      if (in_first + in_second >= static_cast<size_t>(ok.load())) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    INFO("requests " << ok.load() << ", lines in the old file " << in_first << ", in the new "
                     << in_second);
    CHECK(in_first > 0);
    CHECK(in_second > 0);
    CHECK(in_first + in_second == static_cast<size_t>(ok.load()));
  }
  std::remove(first.c_str());
  std::remove(second.c_str());
}

TEST_CASE("access log: an unwritable path stops start-up with a clear error", "[access_log]") {
  TempFile cfg(fill(config_with_log("/nonexistent-dir/access.log", "combined"),
                    {{"B0", std::to_string(closed_port())}}));
  Process p({SLUICE_BINARY, "--config", cfg.path()});
  auto status = p.wait_exit(std::chrono::seconds(10));
  REQUIRE(status.has_value());
  INFO(p.output());
  CHECK(*status == 1);
  CHECK(p.output().find("access log: /nonexistent-dir/access.log: No such file or directory") !=
        std::string::npos);
}

}  // namespace
