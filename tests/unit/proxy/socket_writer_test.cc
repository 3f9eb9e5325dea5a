#include "proxy/socket_writer.h"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace sluice::proxy {
namespace {

// A connected pair of non-blocking stream sockets with small buffers, so
// the kernel stops taking bytes early; closed at the end of the test.
struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0);
    int small = 4096;
    ::setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  // Everything readable on the far side now.
  std::string drain() {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd[1], buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
};

uv_buf_t buf(std::string& s) { return uv_buf_init(s.data(), static_cast<unsigned>(s.size())); }

TEST_CASE("socket writer: what the kernel takes at once is not copied", "[socket_writer]") {
  SocketPair p;
  SocketWriter w;
  std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "hello";
  uv_buf_t bufs[] = {buf(head), buf(body)};
  REQUIRE(w.write(p.fd[0], bufs, 2) == 0);
  CHECK(w.queued() == 0);
  CHECK(p.drain() == head + body);
}

TEST_CASE("socket writer: the rest queues, keeps its order and leaves on flush",
          "[socket_writer]") {
  SocketPair p;
  SocketWriter w;
  std::string sent;
  // Far more than the socket buffers hold, in pieces, so some go straight
  // to the kernel and later ones queue behind the first that did not fit.
  for (int i = 0; i < 64; ++i) {
    std::string piece(10000, static_cast<char>('a' + i % 26));
    uv_buf_t b = buf(piece);
    REQUIRE(w.write(p.fd[0], &b, 1) == 0);
    sent += piece;
    // The caller's buffer may be reused at once.
    piece.assign(piece.size(), '!');
  }
  CHECK(w.queued() > 0);
  CHECK(w.queued() < sent.size());
  std::string got;
  for (int round = 0; round < 10000 && w.queued() > 0; ++round) {
    got += p.drain();
    REQUIRE(w.flush(p.fd[0]) == 0);
  }
  got += p.drain();
  CHECK(w.queued() == 0);
  CHECK(got.size() == sent.size());
  CHECK(got == sent);
}

TEST_CASE("socket writer: a peer gone is an error, not a signal", "[socket_writer]") {
  SocketPair p;
  SocketWriter w;
  ::close(p.fd[1]);
  p.fd[1] = -1;
  std::string bytes = "late";
  uv_buf_t b = buf(bytes);
  // SIGPIPE's default action would end the test run here.
  CHECK(w.write(p.fd[0], &b, 1) == -EPIPE);
}

TEST_CASE("socket writer: clear drops what is queued", "[socket_writer]") {
  SocketPair p;
  SocketWriter w;
  std::string big(1 << 20, 'x');
  uv_buf_t b = buf(big);
  REQUIRE(w.write(p.fd[0], &b, 1) == 0);
  CHECK(w.queued() > 0);
  w.clear();
  CHECK(w.queued() == 0);
  CHECK(w.flush(p.fd[0]) == 0);
}

}  // namespace
}  // namespace sluice::proxy
