#include "proxy/client_response.h"

#include <charconv>

namespace sluice::proxy {

ClientResponsePlan plan_client_response(const ResponseHead& h, const ClientSide& client) {
  ClientResponsePlan plan;
  plan.head.edits = client.edits;
  // A body whose end the client cannot be told by length: chunks for 1.1,
  // the end of the connection for 1.0 (which has no chunked coding).
  if (h.framing == BodyFraming::Chunked || h.framing == BodyFraming::UntilClose) {
    plan.head.framing = client.http10 ? ClientFraming::Close : ClientFraming::Chunked;
  }
  plan.chunk = plan.head.framing == ClientFraming::Chunked;
  const bool keep = client.keep_alive && plan.head.framing != ClientFraming::Close &&
                    h.status != 101 && !client.upgrade;
  plan.close_after = !keep;
  plan.head.close = plan.close_after && h.status != 101;
  plan.head.keep_alive_10 = client.http10 && !plan.head.close;
  return plan;
}

size_t format_chunk_size(char (&out)[24], size_t len) {
  auto [end, ec] = std::to_chars(out, out + 20, len, 16);
  (void)ec;  // 16 hex digits always fit a size_t
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<size_t>(end - out);
}

}  // namespace sluice::proxy
