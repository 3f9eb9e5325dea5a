// Serialises the request head sent upstream for a request that a route
// forwards. Worker side; plain values only.
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/path.h"
#include "proxy/request_head.h"

namespace sluice::proxy {

// Appends to `out` (which the caller has cleared, keeping its capacity) the
// complete upstream head, ending in "\r\n\r\n":
//
//   METHOD SP target SP "HTTP/1.1" CRLF
//     target: as received, byte for byte; an absolute-form target is sent
//     in origin-form (path, "/" if empty, + query); "*" stays "*". With a
//     route rewrite: add_prefix + (normalised path minus strip_prefix, with
//     a leading "/") + the query as received (never applied to "*").
//   the client's headers in arrival order, repeats kept, except:
//     - hop-by-hop ones and every name the client's Connection header(s)
//       list (Host excepted: it cannot be nominated away); Upgrade is kept
//       for a WebSocket handshake;
//     - Content-Length and Transfer-Encoding (framing is re-emitted below);
//     - Expect (the proxy answers 100-continue itself);
//     - X-Forwarded-For/-Proto/-Host (regenerated below);
//     - names the route's request_headers remove or set.
//     Host stays as received, except for an absolute-form target, where it
//     becomes the target's authority (RFC 9112 §3.2.2: the target wins, and
//     the upstream must see the host we routed on). A request without Host
//     (HTTP/1.0) gets one, so the HTTP/1.1 request upstream is valid: the
//     absolute-form authority, else empty.
//   X-Forwarded-For: <client's X-Forwarded-For values, ", "-joined>, <client_ip>
//   X-Forwarded-Proto: http | https
//   X-Forwarded-Host: <Host as received, or the absolute-form authority>  (when non-empty)
//   the route's request_headers.set, in config order
//   Connection: Upgrade  (WebSocket handshake only)
//   Transfer-Encoding: chunked | Content-Length: N  (when the client sent a body
//     or a Content-Length, for the body exactly as the client sends it)
//   CRLF
//
// Route edits apply to the X-Forwarded-* headers too (remove them, or set a
// fixed value), but never to names the proxy manages itself: hop-by-hop
// names, Content-Length, Expect; and Host can be set but not removed. The
// config loader should reject such edits; here they are ignored.
//
// `target` is parse_target(head.target_view()), `normalized_path` the
// normalised path of an origin- or absolute-form target.
//
// Returns false (and `out` holds garbage) when the request cannot be
// forwarded: its Connection headers list more than ConnectionTokens::kMax
// distinct names. The caller answers 400.
bool build_forward_head(const RequestHead& head, const TargetParts& target,
                        std::string_view normalized_path, const config::Route& route,
                        std::string& out);

}  // namespace sluice::proxy
