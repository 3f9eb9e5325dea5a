// Issue 7: in steady state sluice allocates nothing per request. The real
// sluice binary runs with tests/support/alloc_counter.so preloaded, in front
// of a real sluice-backend; keep-alive clients warm it up, then the heap
// allocations of 10,000 proxied requests are counted per thread (the event
// loop, and every other thread: routing workers, libuv's threadpool, the
// access log's writer) and must be zero, whatever the access log's format.
//
// To see where an allocation comes from, run this test with
// ALLOC_COUNTER_TRACE=20 (and optionally ALLOC_COUNTER_TRACE_FILE=/tmp/x):
// sluice inherits them, and the counter prints the call stacks of the first
// 20 allocations after each snapshot (see tests/support/alloc_counter.h).
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/alloc_counter.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_file.h"

using sluice::test::count_lines;
using sluice::test::read_file;

namespace {

using namespace std::chrono_literals;
using sluice::test::Process;
using sluice::test::TempFile;
using sluice::test::UniqueFd;

constexpr int kClients = 4;
constexpr int kWarmupPerClient = 500;     // 2,000 requests
constexpr int kMeasuredPerClient = 2500;  // 10,000 requests
// Sized so that the access-log lines below are longer than 250 bytes in
// json (about 300) and shorter in combined (about 155): spdlog, which wrote
// the log before proxy/log_writer.h, allocated for every line over 250.
constexpr const char* kUserAgent = "alloc-test/1.0 (keep-alive steady state; sluice integration)";

uint16_t port_after(const std::string& line, const std::string& marker) {
  size_t pos = line.find(marker);
  if (pos == std::string::npos) return 0;
  unsigned port = 0;
  const char* begin = line.data() + pos + marker.size();
  std::from_chars(begin, line.data() + line.size(), port);
  return port <= 65535 ? static_cast<uint16_t>(port) : 0;
}

struct ThreadCounts {
  long tid = 0;
  bool main = false;  // the initial thread: sluice's event loop
  uint64_t allocs = 0;
  uint64_t frees = 0;
  uint64_t bytes = 0;
};

struct Snapshot {
  std::vector<ThreadCounts> threads;
  uint64_t allocs = 0;
  uint64_t frees = 0;

  const ThreadCounts* find(long tid) const {
    for (const auto& t : threads)
      if (t.tid == tid) return &t;
    return nullptr;
  }
};

// Parses alloc_counter's snapshot format; nullopt unless it is complete.
std::optional<Snapshot> parse_snapshot(const std::string& text) {
  std::istringstream in(text);
  std::string word;
  Snapshot s;
  bool ended = false;
  while (in >> word) {
    if (word == "snapshot") {
      uint64_t seq;
      in >> seq;
    } else if (word == "thread") {
      ThreadCounts t;
      int main = 0;
      std::string k1, k2, k3, k4;
      in >> t.tid >> k1 >> main >> k2 >> t.allocs >> k3 >> t.frees >> k4 >> t.bytes;
      t.main = main == 1;
      s.threads.push_back(t);
    } else if (word == "total") {
      std::string k1, k2, k3;
      uint64_t bytes;
      in >> k1 >> s.allocs >> k2 >> s.frees >> k3 >> bytes;
    } else if (word == "end") {
      ended = true;
    }
  }
  if (!ended || !in.eof()) return std::nullopt;
  return s;
}

// What happened between two snapshots, by kind of thread.
struct Delta {
  uint64_t loop_allocs = 0;
  uint64_t other_allocs = 0;
  uint64_t frees = 0;
  std::string per_thread;  // "tid 123 (loop): 0 allocs, 0 frees; ..."
};

Delta diff(const Snapshot& before, const Snapshot& after) {
  Delta d;
  for (const auto& t : after.threads) {
    const ThreadCounts* b = before.find(t.tid);
    uint64_t a = t.allocs - (b ? b->allocs : 0);
    uint64_t f = t.frees - (b ? b->frees : 0);
    (t.main ? d.loop_allocs : d.other_allocs) += a;
    d.frees += f;
    d.per_thread += "tid " + std::to_string(t.tid) + (t.main ? " (loop)" : "") + ": " +
                    std::to_string(a) + " allocs, " + std::to_string(f) + " frees; ";
  }
  return d;
}

// sluice under the counter, in front of one sluice-backend.
class CountedSluice {
 public:
  explicit CountedSluice(const std::string& access_log_yaml) {
    backend_ = std::make_unique<Process>(
        std::vector<std::string>{SLUICE_BACKEND_BINARY, "--listen", "127.0.0.1:0"});
    std::string line;
    INFO(backend_->output());
    REQUIRE(backend_->wait_for_line(R"(listening on 127\.0\.0\.1:\d+)", 10s, &line));
    uint16_t backend_port = port_after(line, "127.0.0.1:");
    REQUIRE(backend_port != 0);

    // max_concurrent puts every request through the slot accounting;
    // 8 > kClients, so nothing queues.
    config_ = std::make_unique<TempFile>(
        "workers: 2\n"
        "listeners:\n"
        "  - { name: web, listen: \"127.0.0.1:0\" }\n"
        "routes:\n"
        "  - { name: app, upstream: app }\n"
        "upstreams:\n"
        "  app:\n"
        "    servers: [{ address: \"127.0.0.1:" +
        std::to_string(backend_port) +
        "\", max_concurrent: 8 }]\n"
        "logging:\n"
        "  access_log: " +
        access_log_yaml + "\n");
    out_path_ = config_->path() + ".allocs";
    sluice_ = std::make_unique<Process>(
        std::vector<std::string>{SLUICE_BINARY, "--config", config_->path()},
        std::vector<std::string>{std::string("LD_PRELOAD=") + ALLOC_COUNTER_LIBRARY,
                                 std::string(ALLOC_COUNTER_OUT_ENV) + "=" + out_path_});
    INFO(sluice_->output());
    REQUIRE(sluice_->wait_for_line(R"(listener web listening on 127\.0\.0\.1:\d+)", 10s, &line));
    port_ = port_after(line, "127.0.0.1:");
    REQUIRE(port_ != 0);
  }

  ~CountedSluice() {
    ::unlink(out_path_.c_str());
    ::unlink((out_path_ + ".tmp").c_str());
    if (sluice_) {
      sluice_->signal(SIGTERM);
      sluice_->wait_exit(10s);
    }
  }

  uint16_t port() const { return port_; }
  Process& sluice() { return *sluice_; }

  // One snapshot: the counter writes it from its signal handler.
  Snapshot snapshot() {
    ::unlink(out_path_.c_str());
    sluice_->signal(ALLOC_COUNTER_SIGNAL);
    for (int i = 0; i < 500; ++i) {
      if (auto s = parse_snapshot(read_file(out_path_))) return *s;
      std::this_thread::sleep_for(10ms);
    }
    FAIL("no allocation snapshot from sluice; output:\n" << sluice_->output());
    return {};
  }

  // A snapshot taken once sluice has gone quiet: the loop has finished the
  // last responses and the access-log thread has written its lines, so two
  // snapshots 100 ms apart agree.
  Snapshot settled() {
    Snapshot prev = snapshot();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(100ms);
      Snapshot next = snapshot();
      if (next.allocs == prev.allocs && next.frees == prev.frees) return next;
      prev = next;
    }
    FAIL("sluice kept allocating while idle");
    return prev;
  }

 private:
  std::unique_ptr<Process> backend_;
  std::unique_ptr<TempFile> config_;
  std::unique_ptr<Process> sluice_;
  std::string out_path_;
  uint16_t port_ = 0;
};

// kClients keep-alive connections, kept open across runs: a new client
// connection costs allocations of its own (per connection, not per request),
// which this test is not about.
class Clients {
 public:
  explicit Clients(uint16_t port) {
    for (int i = 0; i < kClients; ++i) {
      std::string error;
      fds_.push_back(sluice::test::connect_tcp("127.0.0.1", port, 5s, &error));
      INFO(error);
      REQUIRE(fds_.back().valid());
    }
  }

  // Each connection sends `per_client` copies of `request` one after
  // another, all connections at once; returns how many got a complete 200
  // with a body of `body_size` bytes on a connection that stays open.
  int run(int per_client, const std::string& request, size_t body_size) {
    std::atomic<int> ok{0};
    std::mutex mu;
    std::vector<std::thread> threads;
    for (auto& fd : fds_) {
      threads.emplace_back([&, fd = fd.get()] {
        for (int i = 0; i < per_client; ++i) {
          if (!sluice::test::send_all(fd, request, 5s)) break;
          auto r = sluice::test::read_response(fd, 5s);
          if (r.status != 200 || !r.complete || !r.keep_alive || r.body.size() != body_size) {
            std::lock_guard lock(mu);
            errors_ += "status " + std::to_string(r.status) + " " + r.error + "; ";
            break;
          }
          ++ok;
        }
      });
    }
    for (auto& t : threads) t.join();
    return ok.load();
  }

  const std::string& errors() const { return errors_; }

 private:
  std::vector<UniqueFd> fds_;
  std::string errors_;
};

struct Measured {
  Delta delta;
  int requests = 0;
};

std::string get(const std::string& target) {
  return sluice::test::build_request(
      "GET", target, {{"User-Agent", kUserAgent}, {"Referer", "http://example.test/"}});
}

// Warm up (the connections, pools, free lists and buffers reach their
// steady size), then count what 10,000 more `request`s allocate.
Measured measure(CountedSluice& s, const std::string& request = get("/"),
                 size_t body_size = 100) {
  Clients clients(s.port());
  // Every client in flight at once, so the upstream keeps kClients
  // connections and every per-request free list holds kClients entries.
  int slow = clients.run(1, get("/sleep?ms=200"), 6);
  int warm = clients.run(kWarmupPerClient, request, body_size);
  INFO(clients.errors());
  REQUIRE(slow == kClients);
  REQUIRE(warm == kClients * kWarmupPerClient);
  Snapshot before = s.settled();
  REQUIRE(before.allocs > 0);  // the counter sees sluice (start-up allocates plenty)
  Measured m;
  m.requests = clients.run(kMeasuredPerClient, request, body_size);
  INFO(clients.errors());
  REQUIRE(m.requests == kClients * kMeasuredPerClient);
  Snapshot after = s.settled();
  m.delta = diff(before, after);
  std::printf("alloc_test: %d requests: %llu allocations on the loop thread, %llu on other "
              "threads, %llu frees (%s)\n",
              m.requests, static_cast<unsigned long long>(m.delta.loop_allocs),
              static_cast<unsigned long long>(m.delta.other_allocs),
              static_cast<unsigned long long>(m.delta.frees), m.delta.per_thread.c_str());
  return m;
}

}  // namespace

TEST_CASE("alloc: keep-alive proxying allocates nothing per request, access log off",
          "[alloc]") {
  CountedSluice s("{ path: \"off\" }");
  Measured m = measure(s);
  INFO(m.delta.per_thread);
  CHECK(m.delta.loop_allocs == 0);
  CHECK(m.delta.other_allocs == 0);
  CHECK(m.delta.frees == 0);
}

// A request body is read (buffer_request) into the exchange's buffer, whose
// memory block is kept from one request to the next, and a response body
// comes back the same way: a 1 KiB upload echoed costs nothing either.
TEST_CASE("alloc: keep-alive POSTs with a body allocate nothing per request", "[alloc]") {
  CountedSluice s("{ path: \"off\" }");
  const std::string body(1024, 'x');
  Measured m = measure(
      s, sluice::test::build_request("POST", "/echo", {{"User-Agent", kUserAgent}}, body),
      body.size());
  INFO(m.delta.per_thread);
  CHECK(m.delta.loop_allocs == 0);
  CHECK(m.delta.other_allocs == 0);
  CHECK(m.delta.frees == 0);
}

// The loop formats each line straight into the byte ring of the log's
// writer (proxy/log_writer.h), allocated once, and the writer thread writes
// the ring out: a line costs no allocation on either thread, however long.
// Here a combined line is about 155 bytes and a json line about 300 (its
// keys and punctuation alone take 149), past the 250 bytes that cost spdlog
// one allocation each; "json-long" requests a 2,000-byte target, for lines
// of about 2,300 bytes.
TEST_CASE("alloc: access log lines allocate nothing, combined or json", "[alloc]") {
  auto log_case = GENERATE(std::string("combined"), std::string("json"), std::string("json-long"));
  const std::string log_format = log_case == "combined" ? "combined" : "json";
  const std::string target = log_case == "json-long" ? "/" + std::string(2000, 't') : "/";
  std::string log_path = "/tmp/sluice-alloc-" + log_case + "-" + std::to_string(::getpid()) + ".log";
  ::unlink(log_path.c_str());
  {
    CountedSluice s("{ path: \"" + log_path + "\", format: " + log_format + " }");
    Measured m = measure(s, get(target));
    INFO(log_case << ": " << m.delta.per_thread);
    CHECK(m.delta.loop_allocs == 0);
    CHECK(m.delta.other_allocs == 0);
    CHECK(m.delta.frees == 0);
  }
  // The log was really on: one line per request (the slow ones, warm-up,
  // measured), and the lines are as long as the comment above says.
  std::string text = read_file(log_path);
  REQUIRE(count_lines(text) ==
          static_cast<size_t>(kClients * (1 + kWarmupPerClient + kMeasuredPerClient)));
  std::string last = text.substr(text.rfind('\n', text.size() - 2) + 1);
  INFO(last);
  std::printf("alloc_test: %s access-log line: %zu bytes\n", log_case.c_str(), last.size() - 1);
  CHECK(last.find(kUserAgent) != std::string::npos);
  CHECK(last.find(target) != std::string::npos);
  if (log_case == "json-long") CHECK(last.size() - 1 > 2000);  // without its newline
  else if (log_case == "json") CHECK(last.size() - 1 > 250);
  else CHECK(last.size() - 1 <= 250);
  ::unlink(log_path.c_str());
}
