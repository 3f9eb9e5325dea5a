// The request-target, taken apart for routing (RFC 9112 §3.2) and its path
// normalised so that a route cannot be bypassed by spelling: "/public/../admin"
// and "/public/%2e%2e/admin" are routed as "/admin".
//
// Normalisation (what route matching sees; the target itself is forwarded as
// received unless the route rewrites it):
//   1. percent-decode only unreserved characters (ALPHA DIGIT - . _ ~):
//      "%41" -> "A", "%2e" -> "."; every other escape stays encoded, with its
//      hex digits upper-cased ("%2f" -> "%2F");
//   1a. "%2F", "%5C" and a raw "\", which some apps read as "/", are what
//      the listener's encoded_slashes says: refused (Reject: the path is
//      invalid), separators like "/" (Decode), or plain characters (Keep);
//   2. remove dot-segments (RFC 3986 §5.2.4): "/a/./b" -> "/a/b",
//      "/a/b/../c" -> "/a/c", "/.." -> "/", "/a/.." -> "/a/".
// Repeated slashes are kept ("/a//b" stays "/a//b"): nginx merges them by
// default, but an upstream may give "//" a meaning, and a route prefix
// "/api/" must then not match what the upstream reads as another path. The
// query string is never decoded or normalised.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace sluice::proxy {

enum class TargetForm : uint8_t {
  Origin,    // "/a/b?q"
  Absolute,  // "http://host:8080/a/b?q" (http or https, no userinfo)
  Asterisk,  // "*" (OPTIONS)
};

// Views into the target passed to parse_target().
struct TargetParts {
  TargetForm form = TargetForm::Origin;
  std::string_view authority;  // Absolute only: "host:8080", as received
  std::string_view path;       // raw; "" for "http://host" or "http://host?q"; "*" for Asterisk
  std::string_view query;      // "?..." byte for byte, '?' included; "" when absent
};

// nullopt for a target that cannot be routed: empty; not origin-, absolute-
// or asterisk-form (so authority-form "host:443" of CONNECT too); a scheme
// other than http/https; an absolute-form authority with userinfo, bad
// characters or an empty host; or any control byte, space, DEL or '#' (a
// fragment is never part of a request-target). Percent-encoding is checked
// by normalisation, not here.
std::optional<TargetParts> parse_target(std::string_view target);

// Appends the normalised form of a raw path (TargetParts::path of an origin-
// or absolute-form target) to `out`, leaving what `out` held before alone.
// An empty path normalises to "/". Returns false, with `out` in an
// unspecified state past its old size, when the path does not start with
// '/' or has a bad escape ("%zz", a truncated "%4"), or, with Reject, holds
// an encoded slash or a backslash.
bool normalize_path_into(std::string_view raw_path, std::string& out,
                         config::EncodedSlashes slashes);

// The normalised path of a whole request-target: "/a/%2e%2e/b?q" -> "/b",
// "http://h/a/./b?q" -> "/a/b", "*" -> "*". nullopt when invalid (see
// parse_target and normalize_path_into).
std::optional<std::string> normalize_path(
    std::string_view target, config::EncodedSlashes slashes = config::EncodedSlashes::Keep);

// The query part of a request-target, '?' included, byte for byte:
// "/a?x=%41" -> "?x=%41"; "" when there is none.
std::string_view target_query(std::string_view target);

// The authority of an absolute-form target ("http://Example.com:8080/x" ->
// "Example.com:8080"); "" for any other (or invalid) target.
std::string_view target_authority(std::string_view target);

}  // namespace sluice::proxy
