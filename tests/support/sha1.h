// SHA-1 and base64, just enough for the WebSocket handshake (RFC 6455 4.2.2):
// the backend must answer Sec-WebSocket-Key with the matching
// Sec-WebSocket-Accept, and tests may check what the proxy relays.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::test {

std::array<uint8_t, 20> sha1(std::string_view data);

std::string base64(std::string_view bytes);

// base64(sha1(key + the RFC 6455 GUID)).
std::string websocket_accept(std::string_view key);

}  // namespace sluice::test
