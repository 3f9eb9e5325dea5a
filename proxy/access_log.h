// The access log: one line per request, in `combined` or `json` format, to
// a file or stdout. Lines are formatted on the loop thread and handed to
// spdlog's asynchronous logger, whose own thread does the writing; when its
// queue is full the oldest line is dropped and counted, so a slow disk can
// never stall the loop.
#pragma once

#include <spdlog/async_logger.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/result.h"

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

class ReopenableFileSink;

class AccessLog {
 public:
  // Opens the configured destination; a `path: off` log accepts and drops.
  static Result<std::unique_ptr<AccessLog>> open(const config::AccessLog& cfg);
  ~AccessLog();

  bool enabled() const { return logger_ != nullptr; }
  void log(const AccessEntry& e);

  // SIGUSR1: the file is reopened (by the writer thread, before its next
  // line), so logrotate can move it away.
  void reopen();
  // Lines dropped because the writer could not keep up.
  uint64_t dropped() const;

 private:
  AccessLog() = default;

  config::AccessLogFormat format_ = config::AccessLogFormat::Combined;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
  std::shared_ptr<ReopenableFileSink> file_;
  std::string line_;  // reused for every line
  // Cached "[22/Nov/2026:01:02:03 +0000]" for the current second.
  int64_t stamp_second_ = -1;
  std::string stamp_;
  std::string stamp_iso_;
};

}  // namespace sluice::proxy
