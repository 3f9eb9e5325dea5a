// The access log: one line per request, in `combined` or `json` format, to
// a file or stdout. The loop thread formats each line straight into the
// ring of a LogWriter, whose own thread writes them out in batches; when
// the ring is full the new line is dropped and counted, so a slow disk can
// never stall the loop, and no line, however long, allocates.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/result.h"
#include "proxy/log_writer.h"

namespace sluice::proxy {

// What one request leaves in the log; views into the request's buffers.
struct AccessEntry {
  std::string_view client_ip;
  std::string_view method;
  std::string_view target;
  int http_minor = 1;
  int status = 0;             // 0: the client left before any response (logged as 499)
  uint64_t body_bytes = 0;    // response body bytes sent to the client
  std::string_view referer;
  std::string_view user_agent;
  std::string_view route;     // empty when no route matched
  std::string_view upstream;  // "host:port" of the server used, or empty
  uint64_t duration_us = 0;   // head complete (or first byte) to last byte queued
};

class AccessLog {
 public:
  // Opens the configured destination; a `path: off` log accepts and drops.
  static Result<std::unique_ptr<AccessLog>> open(const config::AccessLog& cfg);
  ~AccessLog();

  bool enabled() const { return writer_ != nullptr; }
  // From one thread only (the event loop), which also destroys the log.
  void log(const AccessEntry& e);

  // SIGUSR1: the file is reopened (by the writer thread, before its next
  // write), so logrotate can move it away.
  void reopen();
  // Lines dropped because the writer could not keep up (or could not write).
  uint64_t dropped() const;

  // Replaced by a reload: no more lines come, and what is queued is written
  // out in the background. Destroying the log blocks until then, unless
  // finished() says it is done.
  void retire();
  bool finished() const;

 private:
  AccessLog() = default;
  void update_stamps();

  config::AccessLogFormat format_ = config::AccessLogFormat::Combined;
  std::unique_ptr<LogWriter> writer_;  // null: `path: off`
  // "[22/Nov/2026:01:02:03 +0000]" and "2026-11-22T01:02:03+0000" for the
  // current second, in fixed arrays so that a new second allocates nothing.
  int64_t stamp_second_ = -1;
  std::array<char, 48> stamp_{};
  size_t stamp_len_ = 0;
  std::array<char, 48> stamp_iso_{};
  size_t stamp_iso_len_ = 0;
};

}  // namespace sluice::proxy
