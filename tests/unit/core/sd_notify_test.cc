#include "core/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice {
namespace {

// A real notification socket, as systemd would hold it.
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    name_ = "/tmp/sluice-notify-test-" + std::to_string(::getpid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = name_;
    if (abstract) path[0] = '\0';
    else ::unlink(path.c_str());
    std::memcpy(addr.sun_path, path.data(), path.size());
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    env_ = abstract ? "@" + name_.substr(1) : name_;
    ::setenv("NOTIFY_SOCKET", env_.c_str(), 1);
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
    if (env_[0] == '/') ::unlink(name_.c_str());
  }
  std::string receive() {
    char buf[512];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
  std::string name_, env_;
};

TEST_CASE("sd_notify: READY=1 reaches a path socket", "[sd_notify]") {
  NotifySocket sock(false);
  SdNotifier n;
  REQUIRE(n.enabled());
  CHECK(n.ready());
  CHECK(sock.receive() == "READY=1");
  CHECK(n.stopping());
  CHECK(sock.receive() == "STOPPING=1");
}

TEST_CASE("sd_notify: abstract sockets and RELOADING with MONOTONIC_USEC", "[sd_notify]") {
  NotifySocket sock(true);
  SdNotifier n;
  REQUIRE(n.enabled());
  CHECK(n.reloading());
  std::string msg = sock.receive();
  CHECK(msg.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(std::strtoull(msg.c_str() + msg.find('=', 12) + 1, nullptr, 10) > 0);
}

TEST_CASE("sd_notify: without NOTIFY_SOCKET sending is a no-op", "[sd_notify]") {
  ::unsetenv("NOTIFY_SOCKET");
  SdNotifier n;
  CHECK_FALSE(n.enabled());
  CHECK_FALSE(n.ready());
}

TEST_CASE("sd_notify: watchdog interval is half of WATCHDOG_USEC", "[sd_notify]") {
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  ::unsetenv("WATCHDOG_PID");
  CHECK(SdNotifier::watchdog_interval() == std::chrono::microseconds(1500000));
  ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
  CHECK_FALSE(SdNotifier::watchdog_interval().has_value());
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(SdNotifier::watchdog_interval().has_value());
}

}  // namespace
}  // namespace sluice
