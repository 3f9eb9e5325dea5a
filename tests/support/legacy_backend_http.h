// HTTP pieces shared by the poller and the workers of sluice-legacy-backend:
// complete replies, and the endpoints answered without the service time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tests/support/legacy_backend.h"

namespace sluice::test {

struct LocalAnswer {
  std::string bytes;  // the complete response
  bool close = false;
};

// A complete response with a text/plain body.
std::string legacy_reply(int status, const char* reason, std::string_view body, bool keep_alive);
// The head alone, announcing `content_length` body bytes.
std::string legacy_reply_head(int status, const char* reason, uint64_t content_length,
                              bool keep_alive);
// The app's own overload answer (Connection: close).
std::string overloaded_reply();

// /stats, /stats/reset, /health, /health/down, /health/up; nullopt for any
// other path.
std::optional<LocalAnswer> local_endpoint(std::string_view path, LegacyBackend& app,
                                          bool keep_alive);

// For the poller: `head` is a complete request head it peeked at. The
// answer if it is a bodiless GET or HEAD to a local endpoint, else nullopt
// (the request goes to a worker).
std::optional<LocalAnswer> local_answer(std::string_view head, LegacyBackend& app);

}  // namespace sluice::test
