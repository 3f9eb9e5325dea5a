// sluice under systemd, without systemd: the real binary talking the notify
// protocol to a datagram socket the test owns (as systemd would own it), and
// the packaged unit file checked by `systemd-analyze verify`.
//
//   [notify]  READY=1 once the listener accepts, [RELOADING=1 and] READY=1
//             after SIGHUP, STOPPING=1 and exit 0 on SIGTERM, WATCHDOG=1 at
//             WATCHDOG_USEC/2; with a socket path and an abstract ('@') name.
//   [unit]    packaging/sluice.service verifies cleanly; packaging/sluice.yaml
//             (the default /etc/sluice/sluice.yaml) passes `sluice check`.
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_file.h"

using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kSluice = SLUICE_BINARY;

using Clock = std::chrono::steady_clock;

constexpr const char* kConfig = R"(listeners:
  - name: web
    listen: "127.0.0.1:0"
routes:
  - name: health
    match: { path_exact: "/healthz" }
    respond: { status: 200, body: "ok\n" }
)";

// Variables the test runner may have inherited from a systemd service of its
// own; they would turn sluice's watchdog on or off behind the test's back.
// (NOTIFY_SOCKET is always overridden when the child is spawned.)
void clear_inherited_watchdog_env() {
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
}

// The receiving end of $NOTIFY_SOCKET: a unix datagram socket bound to a path
// under /tmp, or to a name in the abstract namespace ("@name" in the
// variable, a leading NUL byte in sun_path).
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract) {
    static std::atomic<int> counter{0};
    std::string name = "sluice-notify-" + std::to_string(::getpid()) + "-" +
                       std::to_string(counter++);
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket(AF_UNIX, SOCK_DGRAM) failed");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      env_value_ = "@" + name;
      addr.sun_path[0] = '\0';
      std::memcpy(addr.sun_path + 1, name.data(), name.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    } else {
      path_ = "/tmp/" + name + ".sock";
      ::unlink(path_.c_str());
      env_value_ = path_;
      std::memcpy(addr.sun_path, path_.data(), path_.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size() + 1);
    }
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
      ::close(fd_);
      throw std::runtime_error("bind(" + env_value_ + ") failed: " + std::strerror(errno));
    }
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  ~NotifySocket() {
    ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  std::string env() const { return "NOTIFY_SOCKET=" + env_value_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    std::string msg(buf, static_cast<size_t>(n));
    log_.push_back(msg);
    return msg;
  }

  // The next datagram that says something about the service state: WATCHDOG=1
  // and STATUS=... lines are dropped (counted in watchdogs()), and a datagram
  // left empty by that is skipped. nullopt if none arrives within `timeout`.
  std::optional<std::string> next_state(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto msg = receive(left);
      if (!msg) return std::nullopt;
      std::string kept;
      std::istringstream lines(*msg);
      for (std::string line; std::getline(lines, line);) {
        if (line == "WATCHDOG=1") {
          ++watchdogs_;
        } else if (line.rfind("STATUS=", 0) != 0 && !line.empty()) {
          if (!kept.empty()) kept += '\n';
          kept += line;
        }
      }
      if (!kept.empty()) return kept;
    }
  }

  int watchdogs() const { return watchdogs_; }

  // Every datagram received so far, for failure messages.
  std::string log() const {
    std::string out;
    for (const auto& m : log_) out += "[" + m + "] ";
    return out;
  }

 private:
  int fd_ = -1;
  std::string path_;  // empty for an abstract socket
  std::string env_value_;
  std::vector<std::string> log_;
  int watchdogs_ = 0;
};

// The port from sluice's "listener web listening on 127.0.0.1:PORT" line.
uint16_t listening_port(Process& proc) {
  std::string line;
  bool found = proc.wait_for_line(R"(listening on 127\.0\.0\.1:\d+)", 5s, &line);
  INFO(proc.output());
  REQUIRE(found);
  std::smatch m;
  REQUIRE(std::regex_search(line, m, std::regex(R"(127\.0\.0\.1:(\d+))")));
  return static_cast<uint16_t>(std::stoi(m[1]));
}

// SIGHUP reloads: "RELOADING=1\nMONOTONIC_USEC=<n>" (as sd_notify(3) wants
// for Type=notify-reload), then READY=1 once the file is applied or refused.
// The RELOADING=1 is optional here: before reload existed, SIGHUP only
// answered READY=1, and that is still a valid answer for systemd 252.
void expect_ready_after_sighup(NotifySocket& sock, Process& proc) {
  proc.signal(SIGHUP);
  const std::regex reloading(R"(^RELOADING=1\nMONOTONIC_USEC=\d+$)");
  while (true) {
    auto msg = sock.next_state(10s);
    INFO("datagrams: " << sock.log());
    INFO(proc.output());
    REQUIRE(msg.has_value());
    if (std::regex_search(*msg, reloading)) continue;
    REQUIRE(*msg == "READY=1");
    return;
  }
}

void expect_stopping_and_exit_0(NotifySocket& sock, Process& proc) {
  proc.signal(SIGTERM);
  auto msg = sock.next_state(10s);
  {
    INFO("datagrams: " << sock.log());
    INFO(proc.output());
    REQUIRE(msg.has_value());
    CHECK(*msg == "STOPPING=1");
  }
  auto status = proc.wait_exit(15s);
  INFO(proc.output());
  CHECK(status == 0);
}

void notify_lifecycle(bool abstract) {
  clear_inherited_watchdog_env();
  NotifySocket sock(abstract);
  TempFile config(kConfig);
  Process proc({kSluice, "--config", config.path()}, {sock.env()});

  auto ready = sock.next_state(10s);
  {
    INFO("datagrams: " << sock.log());
    INFO(proc.output());
    REQUIRE(ready.has_value());
    REQUIRE(*ready == "READY=1");
  }

  // READY=1 promises the listener is bound and listening: a connection made
  // right now must succeed (the kernel queues it even before the loop runs).
  uint16_t port = listening_port(proc);
  std::string error;
  UniqueFd conn = connect_tcp("127.0.0.1", port, 1s, &error);
  INFO(error);
  CHECK(conn.valid());
  HttpResponse r = get(port, "/healthz");
  INFO(r.error);
  CHECK(r.status == 200);

  expect_ready_after_sighup(sock, proc);
  // Still serving after the SIGHUP.
  HttpResponse after = get(port, "/healthz");
  INFO(after.error);
  CHECK(after.status == 200);

  expect_stopping_and_exit_0(sock, proc);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A directory under /tmp, removed with its contents.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = "/tmp/sluice-unit-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("notify: READY, READY after SIGHUP, STOPPING over a socket path", "[notify]") {
  notify_lifecycle(false);
}

TEST_CASE("notify: READY, READY after SIGHUP, STOPPING over an abstract socket", "[notify]") {
  notify_lifecycle(true);
}

TEST_CASE("notify: WATCHDOG=1 at half of WATCHDOG_USEC", "[notify]") {
  // With two event loops, each ping waits for both to answer.
  const int loops = GENERATE(1, 2);
  INFO("io_threads: " << loops);
  clear_inherited_watchdog_env();
  NotifySocket sock(false);
  TempFile config("io_threads: " + std::to_string(loops) + "\n" + std::string(kConfig));
  // 200 ms: sluice pings every 100 ms.
  Process proc({kSluice, "--config", config.path()}, {sock.env(), "WATCHDOG_USEC=200000"});

  auto ready = sock.next_state(10s);
  {
    INFO("datagrams: " << sock.log());
    INFO(proc.output());
    REQUIRE(ready.has_value());
    REQUIRE(*ready == "READY=1");
  }

  int before = sock.watchdogs();
  auto deadline = Clock::now() + 1s;
  while (Clock::now() < deadline && sock.watchdogs() - before < 2) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto msg = sock.next_state(std::max(left, std::chrono::milliseconds(1)));
    INFO("datagrams: " << sock.log());
    REQUIRE_FALSE(msg.has_value());  // nothing but WATCHDOG=1 while running
  }
  INFO("datagrams: " << sock.log());
  CHECK(sock.watchdogs() - before >= 2);

  expect_stopping_and_exit_0(sock, proc);
}

TEST_CASE("unit: systemd-analyze verify accepts packaging/sluice.service", "[unit]") {
  // `systemd-analyze verify` also checks that every Exec*= binary exists, and
  // /usr/sbin/sluice is not installed here: verify a copy whose
  // ExecStartPre=, ExecStart= and ExecReload= run the binary just built.
  std::string unit = read_text(SLUICE_SOURCE_DIR "/packaging/sluice.service");
  const std::string installed = "/usr/sbin/sluice";
  int replaced = 0;
  for (size_t at = unit.find(installed); at != std::string::npos;
       at = unit.find(installed, at + 1)) {
    unit.replace(at, installed.size(), kSluice);
    ++replaced;
  }
  CHECK(replaced == 3);  // ExecStartPre, ExecStart, the first ExecReload

  TempDir dir;
  std::string path = dir.path + "/sluice.service";  // verify needs the unit's own name
  std::ofstream(path) << unit;

  // --man=no: the Documentation= man page is not installed either (the
  // package test checks it is in the .deb).
  Process verify({"systemd-analyze", "verify", "--man=no", path});
  auto status = verify.wait_exit(60s);
  std::string out = verify.output();
  INFO(out);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  // Unknown keys and bad values are only warnings (exit 0): any message that
  // names the unit fails the test.
  CHECK(out.find("sluice.service") == std::string::npos);
  CHECK(out.find("Unknown") == std::string::npos);
}

TEST_CASE("unit: the packaged default configuration passes sluice check", "[unit]") {
  Process check({kSluice, "check", "--config", SLUICE_SOURCE_DIR "/packaging/sluice.yaml"});
  auto status = check.wait_exit(10s);
  INFO(check.output());
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}
