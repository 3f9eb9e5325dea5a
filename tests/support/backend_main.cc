// sluice-backend: the test/demo/benchmark HTTP backend (see backend.h).
//
//   sluice-backend [--listen HOST:PORT] [--max-concurrent N]
//
// Prints "listening on HOST:PORT" once bound (port 0 picks a free port) and
// exits 0 on SIGTERM or SIGINT.
#include <sys/resource.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/support/backend.h"

namespace {

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  uint64_t max_concurrent = 0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "sluice-backend: %s\nusage: sluice-backend [--listen HOST:PORT] "
               "[--max-concurrent N]\n",
               why);
  std::exit(2);
}

// "127.0.0.1:8080" or "[::1]:8080".
void parse_listen(const std::string& s, Options& o) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) usage("--listen wants HOST:PORT");
  o.host = s.substr(0, colon);
  if (o.host.size() >= 2 && o.host.front() == '[' && o.host.back() == ']') {
    o.host = o.host.substr(1, o.host.size() - 2);
  }
  char* end;
  unsigned long port = std::strtoul(s.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port > 65535) usage("bad port in --listen");
  o.port = static_cast<uint16_t>(port);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
    std::string value = argv[++i];
    if (arg == "--listen") {
      parse_listen(value, o);
    } else if (arg == "--max-concurrent") {
      o.max_concurrent = std::strtoull(value.c_str(), nullptr, 10);
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  return o;
}

// Benchmarks hold thousands of connections open.
void raise_fd_limit() {
  rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

struct App {
  uv_loop_t* loop;
  sluice::test::Backend backend;
  uv_signal_t sigterm{};
  uv_signal_t sigint{};
};

void on_signal(uv_signal_t* s, int) {
  auto* app = static_cast<App*>(s->data);
  app->backend.shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&app->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&app->sigint), nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  Options opts = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);  // a vanished peer is a write error, not death
  raise_fd_limit();

  App app{uv_default_loop(), sluice::test::Backend(uv_default_loop(), opts.max_concurrent)};
  int port = app.backend.listen(opts.host, opts.port);
  if (port < 0) {
    std::fprintf(stderr, "sluice-backend: listen on %s:%u: %s\n", opts.host.c_str(), opts.port,
                 uv_strerror(port));
    return 1;
  }
  for (auto [sig, handle] : {std::pair{SIGTERM, &app.sigterm}, std::pair{SIGINT, &app.sigint}}) {
    uv_signal_init(app.loop, handle);
    handle->data = &app;
    uv_signal_start(handle, on_signal, sig);
  }

  bool v6 = opts.host.find(':') != std::string::npos;
  std::printf(v6 ? "listening on [%s]:%d\n" : "listening on %s:%d\n", opts.host.c_str(), port);
  std::fflush(stdout);

  uv_run(app.loop, UV_RUN_DEFAULT);
  return uv_loop_close(app.loop) == 0 ? 0 : 1;
}
