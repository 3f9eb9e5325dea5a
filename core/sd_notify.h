// The systemd notification protocol: one datagram per state change to the
// unix socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract
// namespace). Implemented directly rather than through libsystemd: it is a
// sendto() on a datagram socket, and this keeps the daemon free of a
// dependency that is absent on non-systemd hosts.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

class SdNotifier {
 public:
  // Reads $NOTIFY_SOCKET once; without it every send is a no-op.
  SdNotifier();
  ~SdNotifier();
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }

  // Never blocks: a full receiver queue drops the message (returns false).
  bool send(std::string_view message);

  bool ready() { return send("READY=1"); }
  bool stopping() { return send("STOPPING=1"); }
  bool reloading();  // RELOADING=1 with MONOTONIC_USEC, as systemd requires
  bool status(std::string_view text);

  // Half of $WATCHDOG_USEC when the watchdog is on for this process.
  static std::optional<std::chrono::microseconds> watchdog_interval();

 private:
  int fd_ = -1;
  std::string path_;  // sun_path contents, '\0'-prefixed for abstract sockets
};

}  // namespace sluice
