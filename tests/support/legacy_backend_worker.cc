// The worker side of sluice-legacy-backend: one thread per request, blocking
// reads and writes, the service time spent holding the thread.
#include <llhttp.h>
#include <strings.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <random>
#include <thread>

#include "tests/support/hash.h"
#include "tests/support/legacy_backend.h"
#include "tests/support/legacy_backend_http.h"

namespace sluice::test {

namespace {

// A head larger than this is refused (400), as real apps refuse huge heads.
constexpr size_t kMaxHead = 64 * 1024;
// /bytes bodies go out in pieces of this many pattern bytes; a multiple of
// 26, so every piece continues pattern_body() exactly.
constexpr size_t kPiece = 26 * 2520;

bool send_all_blocking(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

uint64_t query_number(std::string_view target, std::string_view key, uint64_t fallback) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return fallback;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key &&
        pair[key.size()] == '=') {
      uint64_t v = fallback;
      auto digits = pair.substr(key.size() + 1);
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      return ec == std::errc() && p == digits.data() + digits.size() ? v : fallback;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return fallback;
}

}  // namespace

// One worker thread's reusable state: the parser, the read buffer, what
// the parser has collected so far.
struct LegacyWorker {
  explicit LegacyWorker(unsigned index) : rng(index + 1) {}

  int fd = -1;
  llhttp_t parser{};
  std::string read_buf = std::string(64 * 1024, '\0');
  std::string piece = pattern_body(kPiece);
  std::minstd_rand rng;

  // The request being read.
  std::string url;
  std::string field;  // the header name being read
  bool in_value = false;
  bool expect_continue = false;
  bool head_done = false;
  bool complete = false;
  bool keep_alive = true;
  bool head_method = false;
  uint64_t body_length = 0;
  size_t head_bytes = 0;

  void begin() {
    url.clear();
    field.clear();
    in_value = expect_continue = head_done = complete = head_method = false;
    keep_alive = true;
    body_length = 0;
    head_bytes = 0;
  }

  static LegacyWorker& of(llhttp_t* p) { return *static_cast<LegacyWorker*>(p->data); }

  static int on_url(llhttp_t* p, const char* at, size_t len) {
    of(p).url.append(at, len);
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, size_t len) {
    auto& w = of(p);
    if (w.in_value) w.field.clear();
    w.in_value = false;
    w.field.append(at, len);
    return 0;
  }
  static int on_header_value(llhttp_t* p, const char* at, size_t len) {
    auto& w = of(p);
    w.in_value = true;
    if (w.field.size() == 6 && strncasecmp(w.field.data(), "expect", 6) == 0 && len >= 12 &&
        strncasecmp(at, "100-continue", 12) == 0) {
      w.expect_continue = true;
    }
    return 0;
  }
  static int on_headers_complete(llhttp_t* p) {
    auto& w = of(p);
    w.head_done = true;
    w.head_method = p->method == HTTP_HEAD;
    // As Tomcat does: the 100 goes out when the app starts reading the
    // body, i.e. now, on the worker thread.
    bool has_body = (p->flags & F_CHUNKED) || p->content_length > 0;
    if (w.expect_continue && has_body) send_all_blocking(w.fd, "HTTP/1.1 100 Continue\r\n\r\n");
    return 0;
  }
  static int on_body(llhttp_t* p, const char*, size_t len) {
    of(p).body_length += len;
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    auto& w = of(p);
    w.complete = true;
    w.keep_alive = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;  // one request at a time; the rest stays for later
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_url = &LegacyWorker::on_url;
      s.on_header_field = &LegacyWorker::on_header_field;
      s.on_header_value = &LegacyWorker::on_header_value;
      s.on_headers_complete = &LegacyWorker::on_headers_complete;
      s.on_body = &LegacyWorker::on_body;
      s.on_message_complete = &LegacyWorker::on_message_complete;
      return s;
    }();
    return s;
  }

  enum class Read : uint8_t { Ok, Closed, Bad };

  // Blocking: returns once the whole request, body included, is read.
  Read read_request(LegacyConn& c) {
    begin();
    fd = c.fd;
    llhttp_init(&parser, HTTP_REQUEST, &settings());
    parser.data = this;
    std::string carried;
    carried.swap(c.pending);
    bool any = false;
    for (;;) {
      const char* data;
      size_t len;
      if (!carried.empty()) {
        data = carried.data();
        len = carried.size();
      } else {
        ssize_t n = ::recv(c.fd, read_buf.data(), read_buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return any ? Read::Bad : Read::Closed;  // EOF, reset or SO_RCVTIMEO
        data = read_buf.data();
        len = static_cast<size_t>(n);
      }
      any = true;
      llhttp_errno_t err = llhttp_execute(&parser, data, len);
      if (err == HPE_PAUSED && complete) {
        size_t used = static_cast<size_t>(llhttp_get_error_pos(&parser) - data);
        c.pending.assign(data + used, len - used);
        return Read::Ok;
      }
      if (err != HPE_OK) return Read::Bad;
      if (!head_done) {
        head_bytes += len;
        if (head_bytes > kMaxHead) return Read::Bad;
      }
      carried.clear();
    }
  }
};

void LegacyBackend::work_loop(unsigned index) {
  LegacyWorker w(index);
  for (;;) {
    LegacyConn* c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_ready_.wait(lock, [&] { return closed_ || !queue_.empty(); });
      if (closed_) return;
      c = queue_.front();
      queue_.pop_front();
      stats_.queued = static_cast<int64_t>(queue_.size());
      // Under the lock, so queued + busy never dips when a thread takes one.
      note_busy(stats_, 1);
    }
    serve(c, w);
    note_busy(stats_, -1);
    give_back(c);
  }
}

void LegacyBackend::serve(LegacyConn* c, LegacyWorker& w) {
  auto read = w.read_request(*c);
  if (read == LegacyWorker::Read::Closed) {
    c->close = true;
    return;
  }
  if (read == LegacyWorker::Read::Bad) {
    send_all_blocking(c->fd, legacy_reply(400, "Bad Request", "bad request\n", false));
    c->close = true;
    return;
  }
  std::string_view target = w.url;
  std::string_view path = target.substr(0, target.find('?'));
  bool keep_alive = w.keep_alive;
  c->close = !keep_alive;

  if (auto local = local_endpoint(path, *this, keep_alive)) {
    if (w.head_method) local->bytes.resize(local->bytes.find("\r\n\r\n") + 4);
    if (!send_all_blocking(c->fd, local->bytes)) c->close = true;
    return;
  }

  uint64_t ms = opts_.service_ms;
  if (opts_.jitter_ms > 0) ms += w.rng() % (opts_.jitter_ms + 1);
  ms = query_number(target, "ms", ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));

  bool ok;
  if (path == "/bytes") {
    uint64_t n = query_number(target, "n", 0);
    ok = send_all_blocking(c->fd, legacy_reply_head(200, "OK", n, keep_alive));
    for (uint64_t left = w.head_method ? 0 : n; ok && left > 0;) {
      size_t piece = static_cast<size_t>(std::min<uint64_t>(left, kPiece));
      ok = send_all_blocking(c->fd, std::string_view(w.piece).substr(0, piece));
      left -= piece;
    }
  } else {
    std::string body = path == "/upload" ? std::to_string(w.body_length) + "\n" : "legacy ok\n";
    std::string reply = legacy_reply(200, "OK", body, keep_alive);
    if (w.head_method) reply.resize(reply.find("\r\n\r\n") + 4);
    ok = send_all_blocking(c->fd, reply);
  }
  if (ok) {
    ++stats_.served;
  } else {
    c->close = true;
  }
}

}  // namespace sluice::test
