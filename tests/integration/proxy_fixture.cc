#include "tests/integration/proxy_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::itest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The digits following `marker` in `text`, or -1.
int64_t number_after(std::string_view text, std::string_view marker) {
  size_t pos = text.find(marker);
  if (pos == std::string_view::npos) return -1;
  const char* begin = text.data() + pos + marker.size();
  const char* end = text.data() + text.size();
  int64_t v = -1;
  auto [p, ec] = std::from_chars(begin, end, v);
  if (ec != std::errc() || p == begin) return -1;
  return v;
}

// "... 127.0.0.1:PORT ..." -> PORT; 0 if absent.
uint16_t port_from(const std::string& line) {
  int64_t port = number_after(line, "127.0.0.1:");
  return port > 0 && port <= 65535 ? static_cast<uint16_t>(port) : 0;
}

int64_t json_number(const std::string& body, const std::string& key) {
  return number_after(body, "\"" + key + "\":");
}

}  // namespace

// --- Backend ---------------------------------------------------------------------

Backend::Backend(std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {SLUICE_BACKEND_BINARY, "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  proc_ = std::make_unique<Process>(argv);
  std::string line;
  bool ready = proc_->wait_for_line(R"(listening on 127\.0\.0\.1:\d+)", 10s, &line);
  INFO(proc_->output());
  REQUIRE(ready);
  port_ = port_from(line);
  REQUIRE(port_ != 0);
}

BackendStats Backend::stats() {
  HttpResponse r = sluice::test::get(port_, "/stats");
  INFO("backend /stats: " << r.error);
  REQUIRE(r.status == 200);
  BackendStats s;
  s.requests = json_number(r.body, "requests");
  // The backend counts a connection when it accepts it, so the number it
  // reports includes the connection this very /stats request came on.
  s.connections = json_number(r.body, "connections") - 1;
  s.active = json_number(r.body, "active");
  s.max_active = json_number(r.body, "max_active");
  s.max_concurrent = json_number(r.body, "max_concurrent");
  REQUIRE(s.requests >= 0);
  return s;
}

void Backend::reset_stats() {
  HttpResponse r = sluice::test::get(port_, "/stats/reset");
  INFO("backend /stats/reset: " << r.error);
  REQUIRE(r.status == 200);
}

// --- Sluice ----------------------------------------------------------------------

Sluice::Sluice(const std::string& yaml, const std::string& listener) {
  config_ = std::make_unique<TempFile>(yaml);
  proc_ = std::make_unique<Process>(std::vector<std::string>{SLUICE_BINARY, "--config",
                                                             config_->path()});
  std::string line;
  bool ready = proc_->wait_for_line(
      "listener " + listener + R"( listening on 127\.0\.0\.1:\d+)", 10s, &line);
  INFO("config:\n" << yaml);
  INFO("sluice output:\n" << proc_->output());
  REQUIRE(ready);
  port_ = port_from(line);
  REQUIRE(port_ != 0);
}

void Sluice::rewrite_config(const std::string& yaml) {
  std::string tmp = config_->path() + ".new";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << yaml;
    REQUIRE(out.good());
  }
  REQUIRE(std::rename(tmp.c_str(), config_->path().c_str()) == 0);
}

bool Sluice::reload(int nth) {
  proc_->signal(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (count_of(proc_->output(), "reload: ") < static_cast<size_t>(nth)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

int64_t Sluice::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(proc_->pid()) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream ss(line.substr(6));
      int64_t kib = -1;
      ss >> kib;
      return kib;
    }
  }
  return -1;
}

// --- ScriptedUpstream -----------------------------------------------------------------

ScriptedUpstream::ScriptedUpstream(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listen_fd_ >= 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(listen_fd_, 64) == 0);
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

ScriptedUpstream::~ScriptedUpstream() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  ::close(listen_fd_);
}

void ScriptedUpstream::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, fd] {
      handler_(*this, fd);
      ::close(fd);
    });
  }
}

std::vector<std::string> ScriptedUpstream::heads() const {
  std::lock_guard<std::mutex> lock(heads_mu_);
  return heads_;
}

std::string ScriptedUpstream::read_request(int fd, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string buf;
  size_t end = std::string::npos;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (stop_) return {};
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, std::min(ms_left(deadline), 50));
    if (r == 0) {
      if (ms_left(deadline) == 0) return {};
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    char c[4096];
    // Byte by byte would be slow; peek then consume only up to the head end.
    ssize_t n = ::recv(fd, c, sizeof c, MSG_PEEK);
    if (n <= 0) return {};
    std::string_view got(c, static_cast<size_t>(n));
    std::string joined = buf.substr(buf.size() >= 3 ? buf.size() - 3 : 0) + std::string(got);
    size_t take = static_cast<size_t>(n);
    size_t pos = joined.find("\r\n\r\n");
    if (pos != std::string::npos) {
      size_t prefix = joined.size() - static_cast<size_t>(n);
      take = pos + 4 - prefix;
    }
    n = ::recv(fd, c, take, 0);
    if (n <= 0) return {};
    buf.append(c, static_cast<size_t>(n));
  }
  std::string head = buf.substr(0, end + 4);
  {
    std::lock_guard<std::mutex> lock(heads_mu_);
    heads_.push_back(head);
  }
  // Body by Content-Length, if any.
  uint64_t length = 0;
  for (const auto& v : head_values(head, "Content-Length")) {
    std::from_chars(v.data(), v.data() + v.size(), length);
  }
  uint64_t got = 0;
  while (got < length) {
    bool eof = false;
    std::string part = recv_some(fd, static_cast<size_t>(std::min<uint64_t>(length - got, 65536)),
                                 std::chrono::milliseconds(ms_left(deadline)), &eof);
    if (part.empty()) break;
    got += part.size();
  }
  return head;
}

// --- ProxyFixture -----------------------------------------------------------------

ProxyFixture::ProxyFixture(const std::string& yaml_template, Setup setup,
                           std::vector<uint16_t> scripted) {
  std::map<std::string, std::string> vars;
  for (int i = 0; i < setup.backends; ++i) {
    backends_.push_back(std::make_unique<Backend>(setup.backend_args));
    vars["B" + std::to_string(i)] = std::to_string(backends_.back()->port());
  }
  for (size_t i = 0; i < scripted.size(); ++i) {
    vars["S" + std::to_string(i)] = std::to_string(scripted[i]);
  }
  if (yaml_template.find("{CLOSED}") != std::string::npos) {
    vars["CLOSED"] = std::to_string(closed_port());
  }
  yaml_ = fill(yaml_template, vars);
  sluice_ = std::make_unique<Sluice>(yaml_);
}

std::string simple_config(const std::string& listener_extra, const std::string& upstream_extra,
                          const std::vector<std::string>& servers) {
  std::string y =
      "workers: 2\n"
      "listeners:\n"
      "  - name: web\n"
      "    listen: \"127.0.0.1:0\"\n";
  y += listener_extra;
  if (!listener_extra.empty() && listener_extra.back() != '\n') y += "\n";
  y +=
      "routes:\n"
      "  - name: all\n"
      "    upstream: app\n"
      "upstreams:\n"
      "  app:\n"
      "    servers:\n";
  for (const auto& s : servers) y += "      - { address: \"127.0.0.1:" + s + "\" }\n";
  y += upstream_extra;
  if (!upstream_extra.empty() && upstream_extra.back() != '\n') y += "\n";
  y += "logging: { level: info, access_log: { path: \"off\" } }\n";
  return y;
}

uint16_t admin_port(Process& sluice) {
  std::string line;
  REQUIRE(sluice.wait_for_line(R"(admin listening on 127\.0\.0\.1:\d+)", 5s, &line));
  return static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

double metric_sample(const std::string& metrics, const std::string& series) {
  size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + series.size() + 2));
}

std::string fill(std::string tmpl, const std::map<std::string, std::string>& vars) {
  for (const auto& [key, value] : vars) {
    std::string k = "{" + key + "}";
    for (size_t pos = tmpl.find(k); pos != std::string::npos; pos = tmpl.find(k, pos)) {
      tmpl.replace(pos, k.size(), value);
      pos += value.size();
    }
  }
  return tmpl;
}

uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // never listened: connecting is refused
  return ntohs(a.sin_port);
}

// --- raw sockets ----------------------------------------------------------------------

UniqueFd connect_or_fail(uint16_t port) {
  std::string error;
  UniqueFd fd = sluice::test::connect_tcp("127.0.0.1", port, 5s, &error);
  INFO("connect to " << port << ": " << error);
  REQUIRE(fd.valid());
  return fd;
}

std::string recv_some(int fd, size_t max, std::chrono::milliseconds timeout, bool* eof) {
  if (eof) *eof = false;
  auto deadline = Clock::now() + timeout;
  std::string out(max, '\0');
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r == 0) return {};
    if (r < 0) {
      if (errno == EINTR) continue;
      return {};
    }
    ssize_t n = ::recv(fd, out.data(), max, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) {
      if (eof) *eof = true;
      return {};
    }
    out.resize(static_cast<size_t>(n));
    return out;
  }
}

RawResult raw_exchange(uint16_t port, std::string_view bytes, std::chrono::milliseconds timeout) {
  UniqueFd fd = connect_or_fail(port);
  RawResult r;
  sluice::test::send_all(fd.get(), bytes, 5s);  // a peer closing early is fine
  r.bytes = sluice::test::read_until_close(fd.get(), timeout, &r.closed);
  r.status = status_of(r.bytes);
  return r;
}

int status_of(std::string_view bytes) {
  if (bytes.size() < 12 || bytes.substr(0, 7) != "HTTP/1.") return 0;
  int code = 0;
  auto [p, ec] = std::from_chars(bytes.data() + 9, bytes.data() + 12, code);
  if (ec != std::errc() || p != bytes.data() + 12) return 0;
  return code;
}

size_t count_of(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string_view::npos;
       pos = hay.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::vector<std::string> head_lines(std::string_view head) {
  std::vector<std::string> lines;
  while (!head.empty()) {
    size_t eol = head.find("\r\n");
    if (eol == std::string_view::npos) {
      lines.emplace_back(head);
      break;
    }
    if (eol == 0) break;  // the blank line ends the head
    lines.emplace_back(head.substr(0, eol));
    head.remove_prefix(eol + 2);
  }
  return lines;
}

std::vector<std::string> head_values(std::string_view head, std::string_view name) {
  std::vector<std::string> out;
  auto lines = head_lines(head);
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    size_t colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    if (!iequals(l.substr(0, colon), name)) continue;
    std::string_view v = l.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    out.emplace_back(v);
  }
  return out;
}

bool head_has(std::string_view head, std::string_view name) {
  return !head_values(head, name).empty();
}

std::string chunked(std::string_view body, size_t chunk) {
  std::string out;
  out.reserve(body.size() + body.size() / chunk * 12 + 16);
  for (size_t pos = 0; pos < body.size(); pos += chunk) {
    size_t n = std::min(chunk, body.size() - pos);
    char hex[20];
    auto [end, ec] = std::to_chars(hex, hex + sizeof hex, n, 16);
    (void)ec;
    out.append(hex, end).append("\r\n");
    out.append(body.substr(pos, n)).append("\r\n");
  }
  out.append("0\r\n\r\n");
  return out;
}

void run_parallel(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& t : threads) t.join();
}

// --- LegacyBackend ---------------------------------------------------------------

LegacyBackend::LegacyBackend(std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {SLUICE_LEGACY_BACKEND_BINARY, "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  proc_ = std::make_unique<Process>(argv);
  std::string line;
  bool ready = proc_->wait_for_line(R"(listening on 127\.0\.0\.1:\d+)", 10s, &line);
  INFO(proc_->output());
  REQUIRE(ready);
  port_ = port_from(line);
  REQUIRE(port_ != 0);
}

LegacyBackendStats LegacyBackend::stats() {
  HttpResponse r = sluice::test::get(port_, "/stats");
  INFO("legacy backend /stats: " << r.error);
  REQUIRE(r.status == 200);
  LegacyBackendStats s;
  s.served = json_number(r.body, "served");
  s.rejected = json_number(r.body, "rejected");
  s.busy = json_number(r.body, "busy");
  s.peak_busy = json_number(r.body, "peak_busy");
  s.queued = json_number(r.body, "queued");
  s.peak_queue = json_number(r.body, "peak_queue");
  REQUIRE(s.served >= 0);
  return s;
}

void LegacyBackend::reset_stats() {
  HttpResponse r = sluice::test::get(port_, "/stats/reset");
  INFO("legacy backend /stats/reset: " << r.error);
  REQUIRE(r.status == 200);
}

bool LegacyBackend::wait_idle(std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    LegacyBackendStats s = stats();
    if (s.busy == 0 && s.queued == 0) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}


// --- resources of a process -----------------------------------------------------------

int fd_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

std::string fd_listing(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return "(unreadable)";
  std::string out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256];
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    out += std::string(e->d_name) + " -> " + target + "\n";
  }
  ::closedir(d);
  return out;
}

int64_t cpu_time_ms(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name is in parentheses and may contain spaces: count from ')'.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  int64_t utime = -1, stime = -1;
  // After ')': state is field 3 of proc(5); utime and stime are 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  if (utime < 0 || stime < 0) return -1;
  return (utime + stime) * 1000 / ::sysconf(_SC_CLK_TCK);
}

int wait_fds(pid_t pid, int expected, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  int n = fd_count(pid);
  while (n != expected && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    n = fd_count(pid);
  }
  return n;
}

void reset_close(UniqueFd& fd) {
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

}  // namespace sluice::itest
