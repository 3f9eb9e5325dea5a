// Request and response buffering (routes[].buffer_request, buffer_response):
// slow clients never hold the app. Each sluice gets a temp_dir of its own, so
// the tests can see its spill files through /proc/<pid>/fd.
#include <dirent.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/hash.h"
#include "tests/support/temp_file.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Larger than what the kernel's socket buffers between the backend, sluice
// and a client that does not read can hold here (tcp_wmem 4 MiB, tcp_rmem up
// to 32 MiB): without buffering the backend cannot finish writing it.
constexpr uint64_t kBig = 64ull << 20;

// A fresh directory for one sluice's temporary files; removed afterwards
// (which fails, visibly, if a file was left in it).
struct SpillDir {
  std::string path;
  SpillDir() {
    char tmpl[] = "/tmp/sluice-buffering-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~SpillDir() { CHECK(::rmdir(path.c_str()) == 0); }
};

// The backend's /stats without the connections of the earlier /stats calls
// themselves (each is a connection the backend counts).
class BackendWatch {
 public:
  explicit BackendWatch(Backend& b) : backend_(b) { backend_.reset_stats(); }
  BackendStats stats() {
    BackendStats s = backend_.stats();
    s.connections -= calls_++;
    return s;
  }

 private:
  Backend& backend_;
  int calls_ = 0;
};

// Descriptors of process `pid` whose file is (or was, before its unlink)
// in `dir`; with `dir` empty, every descriptor that is not a socket.
size_t open_fds(pid_t pid, const std::string& dir = "") {
  std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(fd_dir.c_str());
  REQUIRE(d != nullptr);
  size_t n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[4096];
    ssize_t len = ::readlink((fd_dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (len <= 0) continue;
    std::string_view link(target, static_cast<size_t>(len));
    if (dir.empty() ? link.rfind("socket:", 0) != 0 : link.rfind(dir + "/", 0) == 0) ++n;
  }
  closedir(d);
  return n;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// One route to the backend, whose only server takes one request at a time.
std::string buffering_config(const std::string& temp_dir, const std::string& route_extra = "",
                             const std::string& buffering_extra = "") {
  return "listeners:\n"
         "  - name: web\n"
         "    listen: \"127.0.0.1:0\"\n"
         "    limits: { max_body_bytes: 4MiB }\n"
         "routes:\n"
         "  - name: all\n"
         "    upstream: app\n" +
         route_extra +
         "upstreams:\n"
         "  app:\n"
         "    servers:\n"
         "      - { address: \"127.0.0.1:{B0}\", max_concurrent: 1 }\n"
         "    queue: { max_length: 10, timeout: 10s }\n"
         "buffering: { temp_dir: \"" +
         temp_dir + "\"" + buffering_extra + " }\n" +
         "logging: { level: info, access_log: { path: \"off\" } }\n";
}

// A client socket that takes little: the kernel buffers between sluice and
// this client fill after a few hundred KiB.
UniqueFd slow_client(uint16_t port) {
  UniqueFd fd = connect_or_fail(port);
  int small = 64 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  return fd;
}

}  // namespace

// --- request buffering ----------------------------------------------------------------

TEST_CASE("buffering: a slow uploader holds no backend connection until its body is in",
          "[buffering]") {
  SpillDir dir;
  ProxyFixture f(buffering_config(dir.path));
  BackendWatch backend(f.backend());
  auto backend_untouched = [&] {
    BackendStats s = backend.stats();
    CHECK(s.connections == 0);
    CHECK(s.requests == 0);
    CHECK(s.active == 0);
  };

  SECTION("one byte every 100 ms") {
    const std::string body = "0123456789abcdefghij";
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), "POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"));
    for (size_t i = 0; i < body.size(); ++i) {
      REQUIRE(send_all(fd.get(), body.substr(i, 1)));
      std::this_thread::sleep_for(100ms);
      if (i == 10 || i == body.size() - 2) {
        INFO("after byte " << i);
        backend_untouched();
      }
    }
    HttpResponse r = read_response(fd.get(), 10s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Body-Hash") == hex64(body_hash(body)));
    CHECK(r.header("X-Body-Length") == "20");
    CHECK(backend.stats().requests == 1);
  }

  SECTION("3 MiB, spilled to a file, all but its last byte sent") {
    std::string body(3 << 20, '\0');
    for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
    UniqueFd fd = connect_or_fail(f.port());
    REQUIRE(send_all(fd.get(), "POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" +
                                   body.substr(0, body.size() - 1)));
    // Past request_memory: sluice holds the body in a file of its own.
    REQUIRE(eventually([&] { return open_fds(f.sluice().pid(), dir.path) == 1; }));
    std::this_thread::sleep_for(300ms);
    backend_untouched();
    REQUIRE(send_all(fd.get(), body.substr(body.size() - 1)));
    HttpResponse r = read_response(fd.get(), 20s);
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Body-Hash") == hex64(body_hash(body)));
    CHECK(r.header("X-Body-Length") == std::to_string(body.size()));
    CHECK(backend.stats().requests == 1);
    // Done with it: the file is closed.
    CHECK(eventually([&] { return open_fds(f.sluice().pid(), dir.path) == 0; }));
  }

  SECTION("a chunked body is buffered whole too") {
    std::string body(1 << 20, 'c');
    UniqueFd fd = connect_or_fail(f.port());
    std::string wire = chunked(body, 10000);
    REQUIRE(send_all(fd.get(), "POST /hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                   wire.substr(0, wire.size() - 5)));
    std::this_thread::sleep_for(300ms);
    backend_untouched();
    REQUIRE(send_all(fd.get(), wire.substr(wire.size() - 5)));  // "0\r\n\r\n"
    HttpResponse r = read_response(fd.get(), 20s);
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Body-Hash") == hex64(body_hash(body)));
    CHECK(r.header("X-Body-Length") == std::to_string(body.size()));
  }
}

TEST_CASE("buffering: a body past max_body_bytes gets 413 and never reaches the backend",
          "[buffering]") {
  SpillDir dir;
  ProxyFixture f(buffering_config(dir.path));
  BackendWatch backend(f.backend());
  // 5 MiB in chunks: no Content-Length to refuse up front, so sluice has
  // buffered (and spilled) 4 MiB of it when the limit trips.
  std::string body(5 << 20, 'x');
  UniqueFd fd = connect_or_fail(f.port());
  send_all(fd.get(), "POST /hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         chunked(body, 64 * 1024));  // may fail half way: sluice closes
  HttpResponse r = read_response(fd.get(), 10s);
  CHECK(r.status == 413);
  BackendStats s = backend.stats();
  CHECK(s.connections == 0);
  CHECK(s.requests == 0);
  CHECK(eventually([&] { return open_fds(f.sluice().pid(), dir.path) == 0; }));
}

TEST_CASE("buffering: a retry replays a spilled body", "[buffering]") {
  SpillDir dir;
  // The first server reads the whole request, then hangs up without a word:
  // a PUT may be tried again on the other server, body and all.
  ScriptedUpstream closer([](ScriptedUpstream& self, int fd) { self.read_request(fd, 5s); });
  std::string yaml = buffering_config(dir.path);
  const std::string one_server = "      - { address: \"127.0.0.1:{B0}\", max_concurrent: 1 }\n";
  yaml.replace(yaml.find(one_server), one_server.size(),
               "      - { address: \"127.0.0.1:{S0}\" }\n"
               "      - { address: \"127.0.0.1:{B0}\" }\n"
               "    retries: { attempts: 1 }\n");
  ProxyFixture f(yaml, Setup{}, {closer.port()});
  BackendWatch backend(f.backend());
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i % 251);
  // Round robin: one of the two goes to the closer first.
  for (int i = 0; i < 2; ++i) {
    HttpResponse r = request(f.port(), "PUT", "/hash", {}, body, 20s);
    INFO(i << ": " << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.header("X-Body-Hash") == hex64(body_hash(body)));
    CHECK(r.header("X-Body-Length") == std::to_string(body.size()));
  }
  CHECK(closer.heads().size() == 1);
  CHECK(backend.stats().requests == 2);
}

// --- response buffering -----------------------------------------------------------------

TEST_CASE("buffering: a slow downloader releases the backend as soon as it has written",
          "[buffering]") {
  SpillDir dir;
  const std::string log = dir.path + ".access.log";
  std::string yaml = buffering_config(dir.path);
  const std::string no_log = "access_log: { path: \"off\" }";
  yaml.replace(yaml.find(no_log), no_log.size(), "access_log: { path: \"" + log + "\", format: json }");
  ProxyFixture f(yaml);
  REQUIRE(get(f.port(), "/").status == 200);
  bool chunked_body = GENERATE(false, true);
  INFO("chunked: " << chunked_body);
  BackendWatch backend(f.backend());
  std::string target = "/bytes?n=" + std::to_string(kBig) + (chunked_body ? "&chunked=1" : "");

  UniqueFd slow = slow_client(f.port());
  REQUIRE(send_all(slow.get(), build_request("GET", target)));
  // The backend writes it all at its own pace and is done, although the
  // client has read next to nothing.
  REQUIRE(eventually([&] {
    BackendStats s = backend.stats();
    return s.requests == 1 && s.active == 0;
  }));
  CHECK(open_fds(f.sluice().pid(), dir.path) == 1);  // the rest waits in a file

  // The only slot is free again: another request is served at once.
  auto t0 = Clock::now();
  HttpResponse quick = request(f.port(), "GET", "/", {}, {}, 3s);
  CHECK(quick.status == 200);
  CHECK(Clock::now() - t0 < 1s);

  // The slow client finally reads, and gets every byte.
  HttpResponse r = read_response(slow.get(), 60s);
  INFO(r.error);
  REQUIRE(r.status == 200);
  CHECK(r.complete);
  CHECK(r.body.size() == kBig);
  CHECK(r.body == pattern_body(kBig));
  CHECK(eventually([&] { return open_fds(f.sluice().pid(), dir.path) == 0; }));

  // The access log counts the body bytes the client got.
  slow.reset();
  std::string text;
  REQUIRE(eventually([&] {
    text = read_file(log);
    return text.find(target) != std::string::npos;
  }));
  size_t line = text.find(target);
  std::string entry = text.substr(line, text.find('\n', line) - line);
  INFO(entry);
  CHECK(entry.find("\"status\":200") != std::string::npos);
  CHECK(entry.find("\"bytes\":" + std::to_string(kBig)) != std::string::npos);
  ::unlink(log.c_str());
}

TEST_CASE("buffering: with buffer_response false a slow downloader holds the backend",
          "[buffering]") {
  SpillDir dir;
  ProxyFixture f(buffering_config(dir.path, "    buffer_response: false\n"));
  BackendWatch backend(f.backend());
  UniqueFd slow = slow_client(f.port());
  REQUIRE(send_all(slow.get(), build_request("GET", "/bytes?n=" + std::to_string(kBig))));
  std::this_thread::sleep_for(1s);
  BackendStats s = backend.stats();
  CHECK(s.requests == 1);
  CHECK(s.active == 1);  // still writing: sluice reads only as the client does
  CHECK(open_fds(f.sluice().pid(), dir.path) == 0);  // nothing spilled
  HttpResponse r = read_response(slow.get(), 60s);
  REQUIRE(r.status == 200);
  CHECK(r.body.size() == kBig);
  CHECK(r.body == pattern_body(kBig));
  CHECK(eventually([&] { return backend.stats().active == 0; }));
}

TEST_CASE("buffering: past max_response_file the backend waits for the client", "[buffering]") {
  SpillDir dir;
  ProxyFixture f(buffering_config(dir.path, "", ", max_response_file: 1MiB"));
  BackendWatch backend(f.backend());
  UniqueFd slow = slow_client(f.port());
  REQUIRE(send_all(slow.get(), build_request("GET", "/bytes?n=" + std::to_string(kBig))));
  std::this_thread::sleep_for(1s);
  BackendStats s = backend.stats();
  CHECK(s.requests == 1);
  CHECK(s.active == 1);
  CHECK(open_fds(f.sluice().pid(), dir.path) == 1);
  HttpResponse r = read_response(slow.get(), 60s);
  REQUIRE(r.status == 200);
  CHECK(r.body.size() == kBig);
  CHECK(r.body == pattern_body(kBig));
  CHECK(eventually([&] { return backend.stats().active == 0; }));
  CHECK(eventually([&] { return open_fds(f.sluice().pid(), dir.path) == 0; }));
}

TEST_CASE("buffering: a client reset mid-download leaves no file open", "[buffering]") {
  SpillDir dir;
  ProxyFixture f(buffering_config(dir.path));
  REQUIRE(get(f.port(), "/").status == 200);
  const pid_t pid = f.sluice().pid();
  const size_t baseline = open_fds(pid);  // everything but sockets
  BackendWatch backend(f.backend());

  UniqueFd slow = slow_client(f.port());
  REQUIRE(send_all(slow.get(), build_request("GET", "/bytes?n=" + std::to_string(kBig))));
  REQUIRE(eventually([&] {
    BackendStats s = backend.stats();
    return s.requests == 1 && s.active == 0;
  }));
  CHECK(open_fds(pid, dir.path) == 1);
  CHECK(open_fds(pid) == baseline + 1);

  // A reset, not a polite close.
  linger hard{1, 0};
  ::setsockopt(slow.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  slow.reset();
  CHECK(eventually([&] { return open_fds(pid, dir.path) == 0; }));
  CHECK(eventually([&] { return open_fds(pid) == baseline; }));
  CHECK(get(f.port(), "/").status == 200);
}

TEST_CASE("buffering: a temp_dir that cannot be written fails the request, not sluice",
          "[buffering]") {
  ProxyFixture f(buffering_config("/nonexistent/sluice-spill"));
  BackendWatch backend(f.backend());

  SECTION("a request body that needs the file gets 500") {
    HttpResponse r = request(f.port(), "POST", "/hash", {}, std::string(1 << 20, 'b'), 10s);
    CHECK(r.status == 500);
    CHECK(backend.stats().requests == 0);
  }
  SECTION("a response that needs the file is cut off") {
    UniqueFd slow = slow_client(f.port());
    REQUIRE(send_all(slow.get(), build_request("GET", "/bytes?n=" + std::to_string(kBig))));
    std::this_thread::sleep_for(500ms);  // the socket buffers fill: the rest needs the file
    bool closed = false;
    std::string got = read_until_close(slow.get(), 20s, &closed);
    CHECK(closed);
    CHECK(got.size() < kBig);
  }
  // Bodies that fit in memory are unaffected, and sluice is still there.
  HttpResponse small = request(f.port(), "POST", "/hash", {}, "small", 5s);
  CHECK(small.status == 200);
  CHECK(small.header("X-Body-Hash") == hex64(body_hash("small")));
}
