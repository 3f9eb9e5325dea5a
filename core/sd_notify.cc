#include "core/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice {

SdNotifier::SdNotifier() {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || env[0] == '\0') return;
  path_ = env;
  if (path_[0] == '@') path_[0] = '\0';
  else if (path_[0] != '/') return;  // only unix sockets are part of the protocol
  if (path_.size() >= sizeof(sockaddr_un::sun_path)) return;
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool SdNotifier::send(std::string_view message) {
  if (fd_ < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
  ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr), len);
  return n == static_cast<ssize_t>(message.size());
}

bool SdNotifier::reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
              static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool SdNotifier::status(std::string_view text) {
  std::string msg = "STATUS=";
  msg.append(text);
  return send(msg);
}

std::optional<std::chrono::microseconds> SdNotifier::watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return std::nullopt;
  // WATCHDOG_PID, when set, names the process the watchdog is meant for.
  if (const char* pid = std::getenv("WATCHDOG_PID")) {
    if (std::strtol(pid, nullptr, 10) != static_cast<long>(::getpid())) return std::nullopt;
  }
  char* end = nullptr;
  unsigned long long v = std::strtoull(usec, &end, 10);
  if (end == usec || *end != '\0' || v == 0) return std::nullopt;
  return std::chrono::microseconds(v / 2);
}

}  // namespace sluice
