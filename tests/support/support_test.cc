// Tests for the test-support library and sluice-backend, through real
// sockets: each TEST_CASE starts its own backend on an ephemeral port.
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/support/hash.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/sha1.h"

using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

struct RunningBackend {
  Process proc{{SLUICE_BACKEND_BINARY, "--listen", "127.0.0.1:0"}};
  uint16_t port = 0;

  RunningBackend() {
    std::string line;
    REQUIRE(proc.wait_for_line(R"(^listening on 127\.0\.0\.1:\d+$)", 10s, &line));
    port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  }
};

uint64_t stat(const std::string& json, const std::string& name) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\"" + name + "\":(\\d+)")));
  return std::stoull(m[1]);
}

}  // namespace

TEST_CASE("body hash is independent of how the input is split") {
  std::string body = pattern_body(1000);
  BodyHasher h;
  for (size_t i = 0; i < body.size(); i += 7) h.update(std::string_view(body).substr(i, 7));
  CHECK(h.digest() == body_hash(body));
  CHECK(h.length() == 1000);
  CHECK(body_hash("a") != body_hash("b"));
  CHECK(hex64(0x0123456789abcdefull) == "0123456789abcdef");
}

TEST_CASE("sha1 and the WebSocket accept key match the RFCs") {
  auto d = sha1("abc");
  CHECK(base64(std::string_view(reinterpret_cast<const char*>(d.data()), d.size())) ==
        "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
  CHECK(base64("ab") == "YWI=");
  CHECK(websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("read_response handles interim, chunked, close-delimited and HEAD responses") {
  // A socket pair stands in for a server that sends exactly these bytes.
  auto scripted = [](std::string_view bytes, bool close_after) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    UniqueFd client(sv[0]), server(sv[1]);
    REQUIRE(send_all(server.get(), bytes));
    if (close_after) server.reset();
    return std::pair{std::move(client), std::move(server)};
  };

  SECTION("a 100 Continue is collected; a chunked body cut short is incomplete") {
    auto [fd, server] = scripted(
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        true);
    HttpResponse r = read_response(fd.get(), 2s);
    REQUIRE(r.interim.size() == 1);
    CHECK(r.interim[0].status == 100);
    CHECK(r.status == 200);
    CHECK(r.body == "hello");
    CHECK_FALSE(r.complete);
    CHECK(r.peer_closed);
  }
  SECTION("return_interim stops at the 1xx and leaves the rest in the socket") {
    auto [fd, server] = scripted(
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false);
    CHECK(read_response(fd.get(), 2s, {.return_interim = true}).status == 103);
    HttpResponse r = read_response(fd.get(), 2s);
    CHECK(r.status == 204);
    CHECK(r.complete);
    CHECK_FALSE(wait_peer_closed(fd.get(), 50ms));
  }
  SECTION("a body without framing ends at close") {
    auto [fd, server] = scripted("HTTP/1.1 200 OK\r\n\r\nabc", true);
    HttpResponse r = read_response(fd.get(), 2s);
    CHECK(r.complete);
    CHECK(r.body == "abc");
    CHECK_FALSE(r.keep_alive);
  }
  SECTION("a HEAD response has no body whatever Content-Length says") {
    auto [fd, server] = scripted("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false);
    HttpResponse r = read_response(fd.get(), 2s, {.head_request = true});
    CHECK(r.complete);
    CHECK(r.body.empty());
    CHECK(r.header("content-length") == "5");
  }
}

TEST_CASE("backend serves GET / and exits 0 on SIGTERM") {
  RunningBackend b;
  HttpResponse r = get(b.port, "/");
  CHECK(r.error == "");
  CHECK(r.status == 200);
  CHECK(r.complete);
  CHECK(r.keep_alive);
  CHECK(r.body.size() == 100);
  CHECK(r.header("content-type") == "text/plain");

  b.proc.signal(SIGTERM);
  CHECK(b.proc.wait_exit(10s) == 0);
}

TEST_CASE("backend echoes a 1 MiB body with its hash") {
  RunningBackend b;
  std::string body = pattern_body(1 << 20);
  body[12345] = 'X';
  HttpResponse r = request(b.port, "POST", "/echo", {}, body);
  REQUIRE(r.status == 200);
  CHECK(r.body == body);
  CHECK(r.header("X-Body-Hash") == hex64(body_hash(body)));
  CHECK(r.header("X-Body-Length") == std::to_string(body.size()));

  // A chunked upload to /hash: llhttp de-chunks it before hashing.
  HttpResponse h = request(b.port, "POST", "/hash", {{"Transfer-Encoding", "chunked"}},
                           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  CHECK(h.body == hex64(body_hash("hello world")) + " 11\n");
}

TEST_CASE("backend /bytes with Content-Length and chunked") {
  RunningBackend b;
  for (size_t n : {size_t{0}, size_t{100000}, size_t{3000000}}) {
    for (bool chunked : {false, true}) {
      std::string target = "/bytes?n=" + std::to_string(n) + (chunked ? "&chunked=1" : "");
      HttpResponse r = get(b.port, target);
      INFO(target);
      REQUIRE(r.status == 200);
      CHECK(r.complete);
      CHECK(r.body == pattern_body(n));
      CHECK(r.header("X-Body-Hash") == hex64(body_hash(r.body)));
      CHECK(r.header("Transfer-Encoding") ==
            (chunked ? std::optional<std::string>("chunked") : std::nullopt));
    }
  }
}

TEST_CASE("backend answers pipelined requests in order") {
  RunningBackend b;
  UniqueFd fd = connect_tcp("127.0.0.1", b.port);
  REQUIRE(fd.valid());
  // The slow one first: the others must wait behind it.
  REQUIRE(send_all(fd.get(), build_request("GET", "/sleep?ms=50") +
                                 build_request("GET", "/bytes?n=300000") +
                                 build_request("GET", "/status?code=204")));
  HttpResponse first = read_response(fd.get());
  HttpResponse second = read_response(fd.get());
  HttpResponse third = read_response(fd.get());
  CHECK(first.body == "slept\n");
  CHECK(second.body == pattern_body(300000));
  CHECK(third.status == 204);
  CHECK(third.body.empty());
  CHECK_FALSE(third.peer_closed);
}

TEST_CASE("backend /stats counts requests, connections and concurrency") {
  RunningBackend b;
  REQUIRE(get(b.port, "/stats/reset").status == 200);
  {
    UniqueFd fd = connect_tcp("127.0.0.1", b.port);
    for (int i = 0; i < 3; ++i) {
      REQUIRE(send_all(fd.get(), build_request("GET", "/")));
      REQUIRE(read_response(fd.get()).status == 200);
    }
  }
  REQUIRE(get(b.port, "/").status == 200);
  std::string json = get(b.port, "/stats").body;
  CHECK(stat(json, "requests") == 4);
  CHECK(stat(json, "connections") == 3);  // two above, plus the /stats one itself
  CHECK(stat(json, "active") == 0);
  CHECK(stat(json, "max_active") == 1);
}

TEST_CASE("backend failure endpoints look broken to the client") {
  RunningBackend b;

  HttpResponse reset = get(b.port, "/reset-mid");
  CHECK(reset.status == 200);
  CHECK_FALSE(reset.complete);
  CHECK(reset.peer_closed);
  CHECK(reset.body == "0123456789");

  UniqueFd fd = connect_tcp("127.0.0.1", b.port);
  REQUIRE(send_all(fd.get(), build_request("GET", "/hang-after-headers")));
  HttpResponse hang = read_response(fd.get(), 300ms);
  CHECK(hang.status == 200);
  CHECK(hang.timed_out);

  HttpResponse garbage = get(b.port, "/garbage");
  CHECK(garbage.status == 0);
  CHECK_FALSE(garbage.error.empty());

  HttpResponse close = get(b.port, "/close");
  CHECK(close.header("Connection") == "close");
  CHECK_FALSE(close.keep_alive);
}

TEST_CASE("backend upgrades /ws and echoes raw bytes") {
  RunningBackend b;
  UniqueFd fd = connect_tcp("127.0.0.1", b.port);
  REQUIRE(send_all(fd.get(), build_request("GET", "/ws",
                                           {{"Connection", "Upgrade"},
                                            {"Upgrade", "websocket"},
                                            {"Sec-WebSocket-Version", "13"},
                                            {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}) +
                                 "ping"));
  HttpResponse r = read_response(fd.get());
  CHECK(r.status == 101);
  CHECK(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  REQUIRE(send_all(fd.get(), "pong"));
  ::shutdown(fd.get(), SHUT_WR);
  bool closed = false;
  CHECK(read_until_close(fd.get(), 5s, &closed) == "pingpong");
  CHECK(closed);
}
