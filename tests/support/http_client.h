// A small blocking HTTP/1.1 client over real TCP sockets, for tests.
//
// Every call takes a timeout (poll-based), so a misbehaving server fails a
// test instead of hanging it. Responses are parsed with llhttp. The reader
// consumes exactly one response from the socket (it peeks, parses, then
// drains only the parsed bytes), so pipelined responses and bytes after a
// 101 stay in the socket for the next call.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::test {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// Connects to a numeric IPv4/IPv6 address. Returns an invalid UniqueFd on
// failure or timeout, with the reason in *error.
UniqueFd connect_tcp(const std::string& host, uint16_t port,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5),
                     std::string* error = nullptr);

// Writes all of `data`. False on error (a closed peer included: no SIGPIPE)
// or timeout.
bool send_all(int fd, std::string_view data,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));

// "METHOD target HTTP/1.1" plus headers and body. Adds "Host: 127.0.0.1"
// unless `headers` has a Host, and Content-Length for a non-empty body
// unless `headers` has Content-Length or Transfer-Encoding (then `body` is
// sent as given, e.g. pre-chunked).
std::string build_request(std::string_view method, std::string_view target,
                          const Headers& headers = {}, std::string_view body = {});

struct HttpResponse {
  int status = 0;  // 0: no response head was received
  std::string reason;
  int http_minor = 1;
  Headers headers;   // in wire order, names as sent
  std::string body;  // de-chunked
  // 1xx responses (other than 101) that came before this one.
  std::vector<HttpResponse> interim;

  bool complete = false;     // the whole message, body included, was received
  bool keep_alive = false;   // llhttp's verdict: another response may follow
  bool peer_closed = false;  // EOF or reset seen while (or right after) reading
  bool timed_out = false;
  std::string error;  // parse or socket error, empty if none

  // First value of a header, case-insensitive name; nullopt if absent.
  std::optional<std::string> header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
};

struct ReadOptions {
  bool head_request = false;    // the request was HEAD: no body whatever the headers say
  bool return_interim = false;  // return a 1xx as the response instead of collecting it
};

// Reads one response (see the file comment for what is consumed).
HttpResponse read_response(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                           ReadOptions options = {});

// Raw bytes until the peer closes or `timeout`; *closed says which.
std::string read_until_close(int fd, std::chrono::milliseconds timeout, bool* closed = nullptr);

// True if the peer closes (EOF or reset) within `timeout` with no data
// pending before the close; false on data or timeout. Consumes nothing.
bool wait_peer_closed(int fd, std::chrono::milliseconds timeout);

// One request on a fresh connection to 127.0.0.1:port; the connection is
// closed afterwards. A connect or send failure gives status 0 and `error`.
HttpResponse request(uint16_t port, std::string_view method, std::string_view target,
                     const Headers& headers = {}, std::string_view body = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

inline HttpResponse get(uint16_t port, std::string_view target, const Headers& headers = {}) {
  return request(port, "GET", target, headers);
}

}  // namespace sluice::test
