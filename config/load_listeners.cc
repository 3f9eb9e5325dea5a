#include "config/load_internal.h"

namespace sluice::config {
namespace {

void load_timeouts(const MapReader& timeouts, ListenerTimeouts& out) {
  timeouts.read("header", out.header, positive_duration());
  timeouts.read("body", out.body, positive_duration());
  timeouts.read("idle", out.idle, positive_duration());
  timeouts.read("send", out.send, positive_duration());
}

void load_limits(const MapReader& limits, ListenerLimits& out) {
  // Below 1KiB even a plain browser request does not fit; above 1MiB a
  // head is an attack, not a request.
  limits.read("max_header_bytes", out.max_header_bytes, size_between(1 * KiB, 1 * MiB));
  limits.read("max_body_bytes", out.max_body_bytes, any_size());
}

}  // namespace

void load_listeners(LoadState& state, const Field& field) {
  Diagnostics& diag = state.diag;
  std::vector<Field> items = sequence_items(diag, field);
  if (items.empty() && (field.node.IsNull() || field.node.IsSequence()))
    field.error(diag, "at least one listener is required");
  // A connection names its listener by a 16-bit index (an idle connection's
  // bytes count); each listener holds a socket, so real configs are far below.
  // The file is refused anyway; checking each of them would only add time.
  if (items.size() > kMaxListeners) {
    field.error(diag, "at most " + std::to_string(kMaxListeners) + " listeners are supported, not " +
                          std::to_string(items.size()));
    return;
  }

  UniqueNames names("listener name");
  for (const Field& item : items) {
    Listener listener;
    MapReader reader(diag, item, {"name", "listen", "max_connections", "max_connections_per_ip",
                                       "encoded_slashes", "timeouts", "limits"});
    if (reader.require("name", listener.name, name())) names.add(diag, listener.name, *reader.get("name"), item.path);
    if (reader.require("listen", listener.listen, address()))
      state.listen_addresses.push_back(AddressUse{listener.listen, *reader.get("listen"), item.path});
    reader.read("max_connections", listener.max_connections, integer<uint32_t>(1, 1'000'000));
    reader.read("max_connections_per_ip", listener.max_connections_per_ip,
                integer<uint32_t>(0, 1'000'000));
    reader.read("encoded_slashes", listener.encoded_slashes,
                one_of<EncodedSlashes>({EncodedSlashes::Reject, EncodedSlashes::Decode,
                                        EncodedSlashes::Keep}));
    load_timeouts(reader.child("timeouts", {"header", "body", "idle", "send"}), listener.timeouts);
    load_limits(reader.child("limits", {"max_header_bytes", "max_body_bytes"}), listener.limits);
    state.config.listeners.push_back(std::move(listener));
  }
}

}  // namespace sluice::config
