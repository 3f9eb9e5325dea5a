// sluice-legacy-backend: a thread-per-request test app (see legacy_backend.h).
//
//   sluice-legacy-backend [--listen HOST:PORT] [--threads T] [--queue Q]
//                         [--service-ms S] [--jitter-ms J]
//
// Prints "listening on HOST:PORT" once bound (port 0 picks a free port), like
// sluice-backend, and exits 0 on SIGTERM or SIGINT.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/support/legacy_backend.h"

namespace {

using sluice::test::LegacyOptions;

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "sluice-legacy-backend: %s\nusage: sluice-legacy-backend [--listen HOST:PORT] "
               "[--threads T] [--queue Q] [--service-ms S] [--jitter-ms J]\n",
               why);
  std::exit(2);
}

unsigned number(const std::string& arg, const std::string& value, unsigned min) {
  char* end;
  unsigned long v = std::strtoul(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < min || v > 1000000) {
    usage(("bad value for " + arg).c_str());
  }
  return static_cast<unsigned>(v);
}

// "127.0.0.1:8080" or "[::1]:8080".
void parse_listen(const std::string& s, LegacyOptions& o) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) usage("--listen wants HOST:PORT");
  o.host = s.substr(0, colon);
  if (o.host.size() >= 2 && o.host.front() == '[' && o.host.back() == ']') {
    o.host = o.host.substr(1, o.host.size() - 2);
  }
  unsigned port = number("--listen", s.substr(colon + 1), 0);
  if (port > 65535) usage("bad port in --listen");
  o.port = static_cast<uint16_t>(port);
}

LegacyOptions parse_args(int argc, char** argv) {
  LegacyOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
    std::string value = argv[++i];
    if (arg == "--listen") parse_listen(value, o);
    else if (arg == "--threads") o.threads = number(arg, value, 1);
    else if (arg == "--queue") o.queue = number(arg, value, 0);
    else if (arg == "--service-ms") o.service_ms = number(arg, value, 0);
    else if (arg == "--jitter-ms") o.jitter_ms = number(arg, value, 0);
    else usage(("unknown option " + arg).c_str());
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  LegacyOptions opts = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);  // a vanished client is a write error, not death
  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait() below sees the signals.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  sluice::test::LegacyBackend app(opts);
  int port = app.start();
  if (port < 0) {
    std::fprintf(stderr, "sluice-legacy-backend: listen on %s:%u: %s\n", opts.host.c_str(),
                 opts.port, std::strerror(-port));
    return 1;
  }
  bool v6 = opts.host.find(':') != std::string::npos;
  std::printf(v6 ? "listening on [%s]:%d\n" : "listening on %s:%d\n", opts.host.c_str(), port);
  std::printf("threads %u, queue %u, service %ums (+0..%ums)\n", opts.threads, opts.queue,
              opts.service_ms, opts.jitter_ms);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  app.stop();
  return 0;
}
