// The typed, validated configuration. A Config is built once by load() and
// never changed afterwards: the daemon holds it through ConfigPtr so a reload
// can swap in a new snapshot while requests keep the one they started with.
//
// Every default lives here, in the member initialisers; docs/configuration.md
// repeats them and tests/unit/config/docs_test.cc checks the two agree.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace re2 {
class RE2;
}

namespace sluice::config {

using Duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;

// A host:port, already resolved to a socket address when loaded.
struct SocketAddress {
  std::string text;  // as written in the file, e.g. "[::1]:8080"
  std::string host;  // without brackets
  uint16_t port = 0;
  sockaddr_storage sockaddr{};
  socklen_t sockaddr_len = 0;

  // "::" because the member `sockaddr` above hides the type's name here.
  const ::sockaddr* sa() const { return reinterpret_cast<const ::sockaddr*>(&sockaddr); }
  // Same resolved address (and port), whatever the spelling.
  bool same_endpoint(const SocketAddress& other) const;
  // Two listening sockets on these could not both bind: the same endpoint,
  // or the same port where one is the wildcard of the other's family
  // (0.0.0.0 takes every IPv4 address; Linux refuses the second bind even
  // with SO_REUSEADDR). "[::]" against IPv4 depends on the host's
  // net.ipv6.bindv6only, so it is left to bind() to say.
  bool overlaps(const SocketAddress& other) const;
  bool is_wildcard() const;  // 0.0.0.0 or [::]
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;  // ordered

struct HeaderEdits {
  HeaderList set;                   // replaces every existing value of the name
  std::vector<std::string> remove;  // case-insensitive names

  bool empty() const { return set.empty() && remove.empty(); }
};

struct ListenerTimeouts {
  Duration header = 10s;  // from the first byte of a request to its complete head
  Duration body = 60s;    // between two reads of a request body
  Duration idle = 75s;    // keep-alive wait for the next request
  Duration send = 60s;    // between two successful writes to the client
};

struct ListenerLimits {
  uint64_t max_header_bytes = 16 * KiB;
  uint64_t max_body_bytes = 10 * MiB;
};

// A path with "%2F", "%5C" or a raw backslash: separators to some apps
// (Tomcat and IIS can decode them, IIS reads "\" as "/"), plain bytes to others, so
// a route on "/admin/" could be bypassed with "/admin%2Fx". Reject answers
// 400 (Apache's and Tomcat's default); Decode routes them as "/" (nginx);
// Keep routes them as ordinary characters.
enum class EncodedSlashes : uint8_t { Reject, Decode, Keep };

// Listeners per config: a client connection keeps its listener's index in
// 16 bits.
inline constexpr size_t kMaxListeners = 65535;

struct Listener {
  std::string name;
  SocketAddress listen;
  uint32_t max_connections = 10000;
  // Most connections one client IP may hold open on this listener; 0 = no limit.
  uint32_t max_connections_per_ip = 0;
  EncodedSlashes encoded_slashes = EncodedSlashes::Reject;
  ListenerTimeouts timeouts;
  ListenerLimits limits;
};

enum class PathMatch : uint8_t { Any, Exact, Prefix, Regex };

struct RouteMatch {
  // Host: empty = any; "*.example.com" matches any subdomain (not the apex).
  std::string host;
  PathMatch path_kind = PathMatch::Any;
  std::string path;                         // the pattern as written
  std::shared_ptr<const re2::RE2> path_regex;  // compiled when path_kind == Regex
  std::vector<std::string> methods;         // empty = any
  HeaderList headers;                       // exact value match, names case-insensitive
};

struct Rewrite {
  std::string strip_prefix;
  std::string add_prefix;

  bool empty() const { return strip_prefix.empty() && add_prefix.empty(); }
};

struct Respond {
  uint16_t status = 200;
  std::string body;
  HeaderList headers;
};

// Under overload a higher class is dequeued first and the lowest is shed first.
enum class Priority : uint8_t { High, Normal, Low };
inline constexpr size_t kPriorities = 3;

struct Route {
  std::string name;
  Priority priority = Priority::Normal;
  RouteMatch match;
  // Exactly one of these two is set.
  std::optional<size_t> upstream;  // index into Config::upstreams
  std::optional<Respond> respond;
  Rewrite rewrite;
  HeaderEdits request_headers;
  HeaderEdits response_headers;
  // Read the whole request body (memory, then a temp file) before it takes
  // an upstream slot, so a slow upload holds no app thread.
  bool buffer_request = true;
  // Take the response as fast as the app sends it (memory, then a temp
  // file), so a slow download holds no app thread either.
  bool buffer_response = true;
};

struct Server {
  SocketAddress address;
  uint32_t weight = 1;
  // The app's thread-pool size; 0 = no cap. With `adaptive`, the ceiling
  // of the learned limit.
  uint32_t max_concurrent = 0;
  bool adaptive = false;  // max_concurrent: auto
};

// The ceiling of `max_concurrent: auto` when no `max` is given.
inline constexpr uint32_t kAdaptiveCeiling = 1000;

enum class Balance : uint8_t { RoundRobin, LeastConnections, RandomTwo };

// fifo: first come, first served. adaptive: FIFO while the queue drains;
// once it has not been empty for a whole `interval` (CoDel's signal of a
// standing queue), newest first, and nobody waits longer than `target`.
enum class QueueMode : uint8_t { Adaptive, Fifo };

struct Queue {
  uint32_t max_length = 1000;
  Duration timeout = 5s;
  QueueMode mode = QueueMode::Adaptive;
  // Measured best in docs/overload.md (same goodput as 500ms/100ms, half
  // the p99 at 1.5x capacity, fewer needless 503s at exactly capacity).
  Duration interval = 1s;
  Duration target = 200ms;
  // A client's own budget ("2.5", "800ms"); "" = none is read.
  std::string deadline_header = "X-Request-Timeout";
};

struct Keepalive {
  uint32_t max_idle = 32;
  Duration idle_timeout = 60s;
};

struct UpstreamTimeouts {
  Duration connect = 2s;
  Duration response = 30s;
};

struct Retries {
  uint32_t attempts = 1;  // further tries after the first
  // Retries may add this share of the requests plus budget_min_per_second
  // (Finagle's and Linkerd's defaults), so retries cannot multiply load.
  uint32_t budget_percent = 20;
  uint32_t budget_min_per_second = 10;
};

// Real failures (connect timeouts, resets, 5xx other than 503), not
// backpressure, take a server out of use for a growing time.
struct PassiveHealth {
  uint32_t failures = 5;  // in a row; 0 = never eject
  Duration ejection = 10s;
  Duration max_ejection = 5min;
};

struct HealthCheck {
  std::string path = "/health";
  Duration interval = 2s;
  Duration timeout = 1s;
  uint32_t healthy_after = 2;
  uint32_t unhealthy_after = 3;
};

struct Upstream {
  std::string name;
  std::vector<Server> servers;
  Balance balance = Balance::RoundRobin;
  Queue queue;
  Keepalive keepalive;
  UpstreamTimeouts timeouts;
  Retries retries;
  PassiveHealth passive_health;
  // A server coming back (after ejection or a failed health check) ramps
  // its limit and weight up over this window; 0 = at once.
  Duration slow_start = 10s;
  std::optional<HealthCheck> health_check;  // absent = no active checks
};

struct Admin {
  std::optional<SocketAddress> listen;  // absent = no admin listener
};

enum class LogLevel : uint8_t { Trace, Debug, Info, Warn, Error };
enum class AccessLogFormat : uint8_t { Combined, Json };

struct AccessLog {
  std::string path = "stdout";  // "stdout", "off", or a file path
  AccessLogFormat format = AccessLogFormat::Combined;
};

struct Logging {
  LogLevel level = LogLevel::Info;
  AccessLog access_log;
};

// Where buffered bodies (routes[].buffer_request, buffer_response) live.
// The sizes follow nginx's client_body_buffer_size, proxy_buffers and
// proxy_max_temp_file_size, scaled for today's memory.
struct Buffering {
  // A request body's first bytes kept in memory; the rest goes to a file.
  uint64_t request_memory = 64 * KiB;
  // Response bytes queued in memory for a slow client before the file.
  uint64_t response_memory = 256 * KiB;
  // Disk-backed, unlike a tmpfs /tmp; private under systemd's PrivateTmp.
  std::string temp_dir = "/var/tmp";
  // One response's file at most; past it the app waits for the client
  // (backpressure). 0 keeps responses off the disk.
  uint64_t max_response_file = 1024 * MiB;
};

struct Config {
  std::string source;  // the file it was loaded from
  uint32_t workers = 0;  // resolved: never 0 after load (default: CPU count)
  // Event loops, each on its own thread with its own listening sockets
  // (SO_REUSEPORT) and connections, sharing the upstream pools. Restart only.
  uint32_t io_threads = 1;
  // Microseconds the loop polls instead of sleeping while a reply is due
  // (core/busy_poll.h). 0 = off.
  uint32_t busy_poll_us = 0;
  // Microseconds of routing the loop does itself per iteration before
  // handing the rest to the workers (core/worker_pool.h). 0 = workers only.
  uint32_t route_on_loop_us = 200;
  // SIGTERM waits this long for requests in flight before closing them.
  Duration drain_timeout = 30s;
  std::vector<Listener> listeners;
  std::vector<Route> routes;
  std::vector<Upstream> upstreams;  // file order
  Admin admin;
  Logging logging;
  Buffering buffering;

  const Upstream* find_upstream(std::string_view name) const;
};

using ConfigPtr = std::shared_ptr<const Config>;

std::string_view to_string(Balance);
std::string_view to_string(Priority);
std::string_view to_string(QueueMode);
std::string_view to_string(LogLevel);
std::string_view to_string(AccessLogFormat);
std::string_view to_string(EncodedSlashes);

}  // namespace sluice::config
