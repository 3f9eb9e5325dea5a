// The config loader on arbitrary text (load_string, what `sluice check` and
// SIGHUP run on the file). Checked:
//   - it returns, never throws, and a failure carries at least one error,
//     each with a message and a position inside the text;
//   - loading is deterministic: the same text gives the same effective
//     values (config/dump.h) twice;
//   - a loaded config is one the proxy can run: every route forwards to an
//     upstream that exists or answers itself, and a request made to match
//     each route is forwarded as a head a strict HTTP parser reads as one
//     request (so no value the loader accepts can corrupt the upstream
//     head), or answered with a response a strict parser reads back.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/dump.h"
#include "config/load.h"
#include "proxy/request_parser.h"
#include "proxy/response_builder.h"
#include "proxy/routing.h"
#include "tests/fuzz/fuzz_support.h"

namespace sluice::fuzz {
namespace {

// The bytes of a request shaped to match `route` (its host, path, method
// and headers), with a three-byte body.
std::string request_for(const config::Route& route) {
  const config::RouteMatch& m = route.match;
  std::string out = m.methods.empty() ? std::string("POST") : m.methods.front();
  out += ' ';
  const bool literal = m.path_kind == config::PathMatch::Exact || m.path_kind == config::PathMatch::Prefix;
  out += literal ? m.path : std::string("/");
  out += " HTTP/1.1\r\nHost: ";
  std::string host = m.host.empty() ? "example.com" : m.host;
  if (host.starts_with("*.")) host.replace(0, 1, "a");
  out += host + "\r\n";
  for (const auto& [name, value] : m.headers)
    if (!same_name(name, "host") && !same_name(name, "content-length")) out += name + ": " + value + "\r\n";
  out += "Content-Length: 3\r\n\r\n";
  return out;
}

struct NoBody final : proxy::RequestSink {
  bool on_request_body(const char*, size_t) override { return true; }
  bool on_request_end() override { return true; }
};

void check_runnable(const config::ConfigPtr& cfg) {
  FUZZ_CHECK(!cfg->listeners.empty());
  size_t checked = 0;
  for (const config::Route& route : cfg->routes) {
    FUZZ_CHECK(route.upstream.has_value() != route.respond.has_value());
    if (route.upstream) FUZZ_CHECK(*route.upstream < cfg->upstreams.size());
    if (++checked > 8) continue;  // enough to cover the values in play

    // Through the client-side parser first, as on the wire: a request it
    // refuses (a method llhttp does not know, say) never reaches routing.
    proxy::RequestHead head;
    NoBody sink;
    proxy::RequestParser parser;
    parser.start(head, sink, cfg->listeners.front().limits);
    proxy::ParseStep step = parser.execute(request_for(route));
    if (step.reject != 0 || !parser.head_done()) continue;
    head.client_ip = "192.0.2.1";
    proxy::RouteJob job;
    job.cfg = cfg;
    job.head = std::move(head);
    const std::string method(job.head.method_view());
    proxy::RouteResult r = proxy::route_request(std::move(job));
    context() = r.upstream_head;
    if (r.outcome == proxy::RouteOutcome::Forward) {
      std::string wire = r.upstream_head + "abc";
      Reparsed p = reparse(HTTP_REQUEST, wire);
      FUZZ_CHECK(check_head_lines(r.upstream_head) >= 1);
      FUZZ_CHECK(p.err == HPE_PAUSED && p.messages == 1 && p.used == wire.size());
      FUZZ_CHECK(p.method == method && p.body == "abc");
      FUZZ_CHECK(p.count("host") == 1);
    } else if (r.outcome == proxy::RouteOutcome::Respond) {
      const config::Respond& respond = *r.route->respond;
      std::string out;
      proxy::build_local_response(out, {.status = respond.status, .body = respond.body,
                                        .headers = &respond.headers});
      context() = out;
      Reparsed p = reparse(HTTP_RESPONSE, out);
      FUZZ_CHECK(p.messages == 1 && p.used == out.size());
      FUZZ_CHECK(p.status == respond.status);
      const bool bodiless = respond.status == 204 || respond.status == 304 || respond.status < 200;
      FUZZ_CHECK(p.body == (bodiless ? std::string() : respond.body));
    }
  }
}

void run(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto loaded = config::load_string(text, "fuzz.yaml");
  if (!loaded) {
    const config::ConfigErrors& errors = loaded.error();
    FUZZ_CHECK(!errors.empty());
    const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
    for (const auto& e : errors) {
      FUZZ_CHECK(!e.message.empty());
      FUZZ_CHECK(e.file == "fuzz.yaml");
      FUZZ_CHECK(e.line >= 0 && e.line <= lines + 1);
      FUZZ_CHECK(e.column >= 0);
      FUZZ_CHECK(!e.to_string().empty());
    }
    return;
  }
  const config::ConfigPtr& cfg = *loaded;
  auto again = config::load_string(text, "fuzz.yaml");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(config::flatten(*cfg) == config::flatten(**again));
  check_runnable(cfg);
}

}  // namespace
}  // namespace sluice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::fuzz::run(data, size);
  return 0;
}
