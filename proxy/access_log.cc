#include "proxy/access_log.h"

#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

namespace sluice::proxy {

// A file sink that can reopen its file on request, for logrotate. spdlog's
// basic_file_sink cannot. Runs on the async logger's thread only.
class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ReopenableFileSink(std::string path) : path_(std::move(path)) {}
  ~ReopenableFileSink() override {
    if (file_) std::fclose(file_);
  }

  bool open_now(std::string* error) {
    FILE* f = std::fopen(path_.c_str(), "ae");
    if (f == nullptr) {
      *error = path_ + ": " + std::strerror(errno);
      return false;
    }
    if (file_) std::fclose(file_);
    file_ = f;
    return true;
  }
  void request_reopen() { reopen_.store(true, std::memory_order_relaxed); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (reopen_.exchange(false, std::memory_order_relaxed)) {
      std::string ignored;
      open_now(&ignored);  // on failure keep writing to the old file
    }
    if (file_ == nullptr) return;
    std::fwrite(msg.payload.data(), 1, msg.payload.size(), file_);
    std::fputc('\n', file_);
  }
  void flush_() override {
    if (file_) std::fflush(file_);
  }

 private:
  std::string path_;
  FILE* file_ = nullptr;
  std::atomic<bool> reopen_{false};
};

namespace {

constexpr size_t kQueueLines = 8192;

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

// Quotes for combined format: '"' and '\' and control bytes are escaped as
// \xHH, as nginx does, so a hostile header cannot forge a log line.
void append_quoted(std::string& out, std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      out.append("\\x");
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      out.append("\\u00");
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

}  // namespace

Result<std::unique_ptr<AccessLog>> AccessLog::open(const config::AccessLog& cfg) {
  std::unique_ptr<AccessLog> log(new AccessLog());
  log->format_ = cfg.format;
  if (cfg.path == "off") return log;
  spdlog::sink_ptr sink;
  if (cfg.path == "stdout") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    sink->set_pattern("%v");
  } else {
    auto file = std::make_shared<ReopenableFileSink>(cfg.path);
    std::string error;
    if (!file->open_now(&error)) return unexpected("access log: " + error);
    log->file_ = file;
    sink = file;
  }
  log->pool_ = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
  log->logger_ = std::make_shared<spdlog::async_logger>(
      "access", sink, log->pool_, spdlog::async_overflow_policy::overrun_oldest);
  log->logger_->set_level(spdlog::level::info);
  log->logger_->flush_on(spdlog::level::info);
  return log;
}

AccessLog::~AccessLog() {
  if (logger_) logger_->flush();
}

void AccessLog::reopen() {
  if (file_) file_->request_reopen();
}

uint64_t AccessLog::dropped() const { return pool_ ? pool_->overrun_counter() : 0; }

void AccessLog::log(const AccessEntry& e) {
  if (!logger_) return;
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (now != stamp_second_) {
    stamp_second_ = now;
    std::tm tm{};
    time_t t = static_cast<time_t>(now);
    localtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
    stamp_ = buf;
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
    stamp_iso_ = buf;
  }
  const int status = e.status == 0 ? 499 : e.status;
  line_.clear();
  if (format_ == config::AccessLogFormat::Combined) {
    line_.append(e.client_ip.empty() ? "-" : e.client_ip);
    line_.append(" - - ");
    line_.append(stamp_);
    line_.append(" \"");
    append_quoted(line_, e.method);
    line_.push_back(' ');
    append_quoted(line_, e.target);
    line_.append(e.http_minor == 0 ? " HTTP/1.0\" " : " HTTP/1.1\" ");
    append_number(line_, static_cast<uint64_t>(status));
    line_.push_back(' ');
    append_number(line_, e.body_bytes);
    line_.append(" \"");
    if (e.referer.empty()) line_.push_back('-');
    else append_quoted(line_, e.referer);
    line_.append("\" \"");
    if (e.user_agent.empty()) line_.push_back('-');
    else append_quoted(line_, e.user_agent);
    line_.push_back('"');
  } else {
    // Appends `"name":` with the right separator.
    auto key = [this](std::string_view name) {
      line_.push_back(line_.empty() ? '{' : ',');
      line_.push_back('"');
      line_.append(name);
      line_.append("\":");
    };
    auto text = [&](std::string_view name, std::string_view v) {
      key(name);
      append_json_string(line_, v);
    };
    auto number = [&](std::string_view name, uint64_t v) {
      key(name);
      append_number(line_, v);
    };
    text("time", stamp_iso_);
    text("client", e.client_ip);
    text("method", e.method);
    text("target", e.target);
    text("protocol", e.http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1");
    number("status", static_cast<uint64_t>(status));
    number("bytes", e.body_bytes);
    number("duration_us", e.duration_us);
    text("route", e.route);
    text("upstream", e.upstream);
    text("referer", e.referer);
    text("user_agent", e.user_agent);
    line_.push_back('}');
  }
  logger_->info(std::string_view(line_));
}

}  // namespace sluice::proxy
