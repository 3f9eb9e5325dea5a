// Parsers for single config values: text in, typed value or message out.
// They know nothing of YAML; config/yaml_reader.h applies them to nodes and
// adds the position and key path to their messages.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/strings.h"
#include "core/result.h"

namespace sluice::config {

template <class T>
struct Parser {
  std::string what;  // completes "expected ..., got a mapping", e.g. "an integer"
  std::function<Result<T>(std::string_view)> parse;
};

Result<int64_t> parse_integer(std::string_view text);

// A whole number in [lo, hi].
template <class T>
Parser<T> integer(T lo, T hi) {
  return {"an integer", [lo, hi](std::string_view text) -> Result<T> {
            auto value = parse_integer(text);
            if (!value) return unexpected(value.error());
            if (*value < static_cast<int64_t>(lo) || *value > static_cast<int64_t>(hi))
              return unexpected("must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                                std::string(text));
            return static_cast<T>(*value);
          }};
}

Parser<Duration> any_duration();       // "0s" allowed
Parser<Duration> positive_duration();  // for timeouts, where 0 makes no sense
Parser<uint64_t> any_size();
Parser<uint64_t> size_between(uint64_t lo, uint64_t hi);
Parser<SocketAddress> address();

Parser<std::string> text();  // any string, "" included
Parser<std::string> non_empty_text();
// Listener, route and upstream names: they show up in logs, metrics labels
// and dotted key paths, so only letters, digits, "_" and "-".
Parser<std::string> name();
// An absolute URL path: starts with "/", visible ASCII only.
Parser<std::string> url_path();
// "api.example.com" or "*.example.com"; returned lowercased.
Parser<std::string> host_pattern();
// Compiled with RE2; RE2's own message on failure.
Parser<std::shared_ptr<const re2::RE2>> regex();
Parser<std::string> http_method();  // a token, upper case as written
Parser<std::string> header_name();  // a token
// A header name the config may set or remove: not one that sluice manages
// itself (Content-Length, Transfer-Encoding, Connection and the other
// hop-by-hop headers, Expect).
Parser<std::string> editable_header_name();
// For request_headers.remove: an editable name other than Host.
Parser<std::string> removable_request_header();
Parser<std::string> header_value();  // no control character but tab

// One of the names to_string() gives for `values`, with a did-you-mean.
template <class E>
Parser<E> one_of(std::vector<E> values) {
  std::vector<std::string> names;
  for (E v : values) names.emplace_back(to_string(v));
  return {"one of " + join(names), [values, names](std::string_view text) -> Result<E> {
            for (size_t i = 0; i < names.size(); ++i)
              if (names[i] == text) return values[i];
            if (auto guess = closest_match(text, names))
              return unexpected("unknown value " + quoted(text) + "; did you mean " + quoted(*guess) + "?");
            return unexpected("unknown value " + quoted(text) + "; expected one of " + join(names));
          }};
}

}  // namespace sluice::config
