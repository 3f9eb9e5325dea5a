// sluice-legacy-backend: a thread-per-request HTTP/1.1 app, built the way
// ASP.NET on IIS or Tomcat's NIO connector are, so tests can show what
// sluice shields such an app from.
//
//   - One poller thread (epoll) accepts connections and watches idle
//     keep-alive connections. When one becomes readable it is handed to a
//     small bounded queue; if that queue is full the poller itself answers
//     "503 Service Unavailable" ("app overloaded") and closes, as those
//     apps do when their request queue overflows.
//   - A fixed pool of worker threads takes connections from the queue. A
//     worker reads the whole request with blocking reads (head and body, so
//     a slow upload holds the thread), sleeps the service time, writes the
//     response with blocking writes (so a slow downloader holds the thread
//     until the kernel has taken the last byte), then gives the connection
//     back to the poller or closes it.
//
// The poller answers a few endpoints itself, without a worker, when the
// whole head is already in the socket: /stats and /stats/reset (so tests can
// observe a saturated app), and /health, /health/down, /health/up. /health
// is answered there on purpose: the counters the concurrency tests assert on
// then see only app requests, not sluice's probes, and a saturated app
// still looks alive, which it is (overload is what sluice's caps handle).
// /health/down makes /health answer 503 until /health/up, so a test can
// fail the health checks of a live process. A head split over several
// packets goes to a worker, which answers these endpoints too, without the
// service time and without counting them as served.
//
// Worker endpoints (all after the service time, `?ms=N` overriding it):
//   any path        200 "legacy ok\n"
//   /bytes?n=N      200 with N bytes
//   /upload         reads the body (Content-Length or chunked), 200 with its
//                   length in decimal
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sluice::test {

struct LegacyWorker;

struct LegacyOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  unsigned threads = 4;       // worker threads: the app's concurrency
  unsigned queue = 16;        // connections waiting for a worker, at most
  unsigned service_ms = 50;   // time each request spends on its thread
  unsigned jitter_ms = 0;     // plus a uniform 0..jitter_ms
};

// The counters behind /stats. Atomics: workers and the poller update them.
struct LegacyStats {
  std::atomic<uint64_t> served{0};     // requests a worker answered (not /stats, /health)
  std::atomic<uint64_t> rejected{0};   // the app's own 503s
  std::atomic<int64_t> busy{0};        // worker threads holding a connection now
  std::atomic<int64_t> peak_busy{0};   // highest `busy` since start or reset
  std::atomic<int64_t> queued{0};      // connections waiting for a worker now
  std::atomic<int64_t> peak_queue{0};  // highest `queued` since start or reset

  std::string json(const LegacyOptions& o) const;
  void reset();
};

// busy += delta, keeping peak_busy.
void note_busy(LegacyStats& s, int64_t delta);

// One client connection. The poller owns every Conn; a worker borrows one
// from the queue and hands it back.
struct LegacyConn {
  int fd = -1;
  std::string pending;  // bytes read past the previous request (pipelining)
  bool close = false;   // set by the worker: the poller closes it on return
};

class LegacyBackend {
 public:
  explicit LegacyBackend(LegacyOptions options);
  ~LegacyBackend();
  LegacyBackend(const LegacyBackend&) = delete;
  LegacyBackend& operator=(const LegacyBackend&) = delete;

  // Binds and starts the poller and workers. Returns the bound port, or a
  // negative errno.
  int start();
  // Stops accepting, wakes every blocked worker (shutdown of its socket),
  // joins every thread and closes every socket. Idempotent.
  void stop();

  const LegacyOptions& options() const { return opts_; }
  LegacyStats& stats() { return stats_; }
  bool health_down() const { return health_down_.load(); }
  void set_health_down(bool down) { health_down_ = down; }

 private:
  // The poller thread.
  void poll_loop();
  void accept_all();
  void on_readable(LegacyConn* c);
  bool answer_locally(LegacyConn* c);
  void dispatch(LegacyConn* c);
  void take_back_returned();
  void rearm(LegacyConn* c);
  void destroy(LegacyConn* c);

  // Worker threads (legacy_backend_worker.cc).
  void work_loop(unsigned index);
  void serve(LegacyConn* c, LegacyWorker& w);
  void give_back(LegacyConn* c);

  LegacyOptions opts_;
  LegacyStats stats_;
  std::atomic<bool> health_down_{false};

  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: a worker returned a connection, or stop()
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  char listen_tag_ = 0;  // epoll data.ptr for listen_fd_ and wake_fd_
  char wake_tag_ = 0;

  // Poller only (and stop(), after the poller has been joined).
  std::unordered_map<LegacyConn*, std::unique_ptr<LegacyConn>> conns_;

  std::mutex mu_;  // guards queue_, returned_, closed_
  std::condition_variable work_ready_;
  std::deque<LegacyConn*> queue_;
  std::vector<LegacyConn*> returned_;
  bool closed_ = false;  // workers exit once the queue is closed

  std::thread poller_;
  std::vector<std::thread> workers_;
};

}  // namespace sluice::test
