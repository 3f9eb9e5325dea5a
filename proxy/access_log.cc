#include "proxy/access_log.h"

#include <charconv>
#include <ctime>

namespace sluice::proxy {

namespace {

using Line = LogWriter::Line;

void append_number(Line& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(std::string_view(buf, static_cast<size_t>(end - buf)));
}

// Quotes for combined format: '"' and '\' and control bytes are escaped as
// \xHH, as nginx does, so a hostile header cannot forge a log line.
void append_quoted(Line& out, std::string_view s) {
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

void append_json_string(Line& out, std::string_view s) {
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
  if (cfg.path == "stdout") {
    log->writer_ = LogWriter::open_stdout();
    return log;
  }
  auto writer = LogWriter::open_file(cfg.path);
  if (!writer) return unexpected("access log: " + writer.error());
  log->writer_ = std::move(writer).value();
  return log;
}

AccessLog::~AccessLog() = default;

void AccessLog::reopen() {
  if (writer_) writer_->reopen();
}

uint64_t AccessLog::dropped() const { return writer_ ? writer_->dropped() : 0; }

void AccessLog::retire() {
  if (writer_) writer_->stop();
}

bool AccessLog::finished() const { return writer_ == nullptr || writer_->finished(); }

void AccessLog::update_stamps() {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (now == stamp_second_) return;
  stamp_second_ = now;
  std::tm tm{};
  time_t t = static_cast<time_t>(now);
  localtime_r(&t, &tm);
  stamp_len_ = std::strftime(stamp_.data(), stamp_.size(), "[%d/%b/%Y:%H:%M:%S %z]", &tm);
  stamp_iso_len_ = std::strftime(stamp_iso_.data(), stamp_iso_.size(), "%Y-%m-%dT%H:%M:%S%z", &tm);
}

void AccessLog::log(const AccessEntry& e) {
  if (!writer_) return;
  update_stamps();
  const int status = e.status == 0 ? 499 : e.status;
  Line line = writer_->begin_line();
  if (format_ == config::AccessLogFormat::Combined) {
    line.append(e.client_ip.empty() ? "-" : e.client_ip);
    line.append(" - - ");
    line.append(std::string_view(stamp_.data(), stamp_len_));
    line.append(" \"");
    append_quoted(line, e.method);
    line.push_back(' ');
    append_quoted(line, e.target);
    line.append(e.http_minor == 0 ? " HTTP/1.0\" " : " HTTP/1.1\" ");
    append_number(line, static_cast<uint64_t>(status));
    line.push_back(' ');
    append_number(line, e.body_bytes);
    line.append(" \"");
    if (e.referer.empty()) line.push_back('-');
    else append_quoted(line, e.referer);
    line.append("\" \"");
    if (e.user_agent.empty()) line.push_back('-');
    else append_quoted(line, e.user_agent);
    line.push_back('"');
  } else {
    // Appends `"name":` with the right separator.
    auto key = [&line](std::string_view name) {
      line.push_back(line.size() == 0 ? '{' : ',');
      line.push_back('"');
      line.append(name);
      line.append("\":");
    };
    auto text = [&](std::string_view name, std::string_view v) {
      key(name);
      append_json_string(line, v);
    };
    auto number = [&](std::string_view name, uint64_t v) {
      key(name);
      append_number(line, v);
    };
    text("time", std::string_view(stamp_iso_.data(), stamp_iso_len_));
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
    line.push_back('}');
  }
  writer_->commit(line);
}

}  // namespace sluice::proxy
