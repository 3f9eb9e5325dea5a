#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::test {

namespace {

using Clock = std::chrono::steady_clock;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool has_header(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return true;
  }
  return false;
}

// Milliseconds left until `deadline`, for poll(); 0 once it has passed.
int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Polls one fd; true when `events` are ready (or an error/hangup is).
bool wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

// llhttp callbacks fill this. on_message_complete pauses the parser so the
// caller learns exactly where the message ended.
struct ParseState {
  HttpResponse* resp;
  bool head_request;
  bool in_value = false;  // the last header callback was for a value
  bool done = false;

  static ParseState& of(llhttp_t* p) { return *static_cast<ParseState*>(p->data); }

  static int on_status(llhttp_t* p, const char* at, size_t n) {
    of(p).resp->reason.append(at, n);
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, size_t n) {
    ParseState& s = of(p);
    if (s.in_value || s.resp->headers.empty()) s.resp->headers.emplace_back();
    s.in_value = false;
    s.resp->headers.back().first.append(at, n);
    return 0;
  }
  static int on_header_value(llhttp_t* p, const char* at, size_t n) {
    ParseState& s = of(p);
    s.in_value = true;
    s.resp->headers.back().second.append(at, n);
    return 0;
  }
  static int on_headers_complete(llhttp_t* p) {
    ParseState& s = of(p);
    s.resp->status = p->status_code;
    s.resp->http_minor = p->http_minor;
    return s.head_request ? 1 : 0;  // 1: this response has no body
  }
  static int on_body(llhttp_t* p, const char* at, size_t n) {
    of(p).resp->body.append(at, n);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    ParseState& s = of(p);
    s.done = true;
    s.resp->complete = true;
    s.resp->keep_alive = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t x;
      llhttp_settings_init(&x);
      x.on_status = on_status;
      x.on_header_field = on_header_field;
      x.on_header_value = on_header_value;
      x.on_headers_complete = on_headers_complete;
      x.on_body = on_body;
      x.on_message_complete = on_message_complete;
      return x;
    }();
    return s;
  }
};

std::string parse_error(llhttp_t* p, llhttp_errno_t err) {
  return std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(p);
}

// After a complete response: has the peer already closed? Never blocks.
bool closed_now(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

UniqueFd connect_tcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                     std::string* error) {
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return UniqueFd();
  };
  sockaddr_storage addr{};
  socklen_t len;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    return fail("not a numeric address: " + host);
  }

  // Non-blocking only for the connect, so it can time out; blocking after.
  UniqueFd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return fail(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    if (errno != EINPROGRESS) return fail(std::string("connect: ") + std::strerror(errno));
    if (!wait_ready(fd.get(), POLLOUT, Clock::now() + timeout)) return fail("connect: timed out");
    int err = 0;
    socklen_t err_len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (err != 0) return fail(std::string("connect: ") + std::strerror(err));
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    if (!wait_ready(fd, POLLOUT, deadline)) return false;
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string build_request(std::string_view method, std::string_view target, const Headers& headers,
                          std::string_view body) {
  std::string req;
  req.reserve(128 + body.size());
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!has_header(headers, "Host")) req += "Host: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) req.append(name).append(": ").append(value) += "\r\n";
  if (!body.empty() && !has_header(headers, "Content-Length") &&
      !has_header(headers, "Transfer-Encoding")) {
    req.append("Content-Length: ").append(std::to_string(body.size())) += "\r\n";
  }
  req += "\r\n";
  req.append(body);
  return req;
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

size_t HttpResponse::header_count(std::string_view name) const {
  size_t count = 0;
  for (const auto& [n, v] : headers) count += iequals(n, name);
  return count;
}

HttpResponse read_response(int fd, std::chrono::milliseconds timeout, ReadOptions options) {
  auto deadline = Clock::now() + timeout;
  HttpResponse resp;
  ParseState state{&resp, options.head_request};
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &ParseState::settings());
  parser.data = &state;
  bool got_bytes = false;
  static thread_local std::string buf(64 * 1024, '\0');

  for (;;) {
    if (!wait_ready(fd, POLLIN, deadline)) {
      resp.timed_out = true;
      resp.error = "timed out";
      return resp;
    }
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK);
    if (n < 0) {
      if (errno == EINTR) continue;
      resp.peer_closed = true;
      resp.error = std::strerror(errno);
      return resp;
    }
    if (n == 0) {
      resp.peer_closed = true;
      // End of input completes a close-delimited body, and nothing else.
      llhttp_errno_t err = llhttp_finish(&parser);
      if (!got_bytes) {
        resp.error = "connection closed before any response byte";
      } else if (err != HPE_OK && err != HPE_PAUSED) {
        resp.error = parse_error(&parser, err);
      } else if (!state.done) {
        resp.error = "connection closed mid-response";
      }
      return resp;
    }
    got_bytes = true;

    llhttp_errno_t err = llhttp_execute(&parser, buf.data(), static_cast<size_t>(n));
    size_t used = static_cast<size_t>(n);
    if (err == HPE_PAUSED) {  // on_message_complete: the message ends here
      used = static_cast<size_t>(llhttp_get_error_pos(&parser) - buf.data());
    } else if (err != HPE_OK) {
      resp.error = parse_error(&parser, err);
      return resp;
    }
    // Drain what the parser used; it is already buffered, so this won't block.
    while (::recv(fd, buf.data(), used, 0) < 0 && errno == EINTR) {
    }

    if (!state.done) continue;
    bool interim = resp.status >= 100 && resp.status < 200 && resp.status != 101;
    if (!interim || options.return_interim) break;
    HttpResponse final_resp;
    final_resp.interim = std::move(resp.interim);
    final_resp.interim.push_back(std::move(resp));
    final_resp.interim.back().interim.clear();
    resp = std::move(final_resp);
    state = ParseState{&resp, options.head_request};
    llhttp_resume(&parser);
  }
  resp.peer_closed = closed_now(fd);
  return resp;
}

std::string read_until_close(int fd, std::chrono::milliseconds timeout, bool* closed) {
  auto deadline = Clock::now() + timeout;
  std::string out;
  char buf[64 * 1024];
  if (closed) *closed = false;
  for (;;) {
    if (!wait_ready(fd, POLLIN, deadline)) return out;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (closed) *closed = true;
  return out;
}

bool wait_peer_closed(int fd, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!wait_ready(fd, POLLIN, deadline)) return false;
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n > 0) return false;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return true;
  }
}

HttpResponse request(uint16_t port, std::string_view method, std::string_view target,
                     const Headers& headers, std::string_view body,
                     std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  HttpResponse resp;
  UniqueFd fd = connect_tcp("127.0.0.1", port, timeout, &resp.error);
  if (!fd.valid()) return resp;
  // A server may answer early (e.g. 413) and close while the body is still
  // going out, so read even after a failed send.
  bool sent = send_all(fd.get(), build_request(method, target, headers, body), timeout);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  resp = read_response(fd.get(), left, ReadOptions{iequals(method, "HEAD")});
  if (!sent && resp.status == 0) resp.error = "send failed; then " + resp.error;
  return resp;
}

}  // namespace sluice::test
