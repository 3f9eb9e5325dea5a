// The worker side of a request: route matching and the transformation of
// the request head into what is sent upstream. Runs on the worker pool, on
// plain values only; never touches libuv, a socket or a connection.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"
#include "proxy/request_head.h"

namespace sluice::proxy {

using ConnId = uint32_t;

struct RouteJob {
  ConnId conn = 0;
  uint32_t gen = 0;             // connection generation: drops stale results
  config::ConfigPtr cfg;        // the snapshot this request lives with
  RequestHead head;             // moved in, moved back in the result
  std::string upstream_head;    // scratch buffer moved in for reuse
  // The accepting listener's rule for "%2F", "%5C" and "\" in the path.
  config::EncodedSlashes slashes = config::EncodedSlashes::Reject;
};

enum class RouteOutcome : uint8_t {
  Forward,     // send upstream_head (+ body) to route->upstream
  Respond,     // answer with route->respond
  NotFound,    // no route matched: 404
  BadRequest,  // the target cannot be routed (e.g. path escapes the root): 400
};

struct RouteResult {
  ConnId conn = 0;
  uint32_t gen = 0;
  config::ConfigPtr cfg;
  RequestHead head;
  RouteOutcome outcome = RouteOutcome::NotFound;
  // Points into *cfg, which the result keeps alive. Null for NotFound/BadRequest.
  const config::Route* route = nullptr;
  // For Forward: the complete request head to write upstream, ending in
  // "\r\n\r\n": request line (target rewritten if the route says so),
  // end-to-end headers with the route's edits, X-Forwarded-*, and framing
  // headers (Content-Length or Transfer-Encoding: chunked) for the body
  // exactly as the client sends it.
  std::string upstream_head;
};

// Routes one request. Pure: the same job always gives the same result.
RouteResult route_request(RouteJob&& job);
// Sets up the calling thread's routing scratch memory (worker start-up).
void warm_routing_thread();

}  // namespace sluice::proxy
