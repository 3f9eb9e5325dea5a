#include "config/load_internal.h"
#include "config/units.h"

namespace sluice::config {
namespace {

Parser<bool> boolean_true() {
  return {"true", [](std::string_view text) -> Result<bool> {
            if (text == "true") return true;
            return unexpected("must be true (leave \"auto\" out for a fixed limit), got " + quoted(text));
          }};
}

// max_concurrent: 8 | auto | { auto: true, max: 64 }
void load_max_concurrent(const MapReader& server_reader, Server& server) {
  auto field = server_reader.get("max_concurrent");
  if (!field) return;
  if (field->node.IsScalar() && field->node.Scalar() == "auto") {
    server.adaptive = true;
    server.max_concurrent = kAdaptiveCeiling;
    return;
  }
  if (field->node.IsMap()) {
    MapReader reader = server_reader.child("max_concurrent", {"auto", "max"});
    bool on = false;
    reader.require("auto", on, boolean_true());
    server.adaptive = true;
    server.max_concurrent = kAdaptiveCeiling;
    reader.read("max", server.max_concurrent, integer<uint32_t>(1, 1'000'000));
    return;
  }
  server_reader.read("max_concurrent", server.max_concurrent, integer<uint32_t>(0, 1'000'000));
}

void load_servers(Diagnostics& diag, const MapReader& upstream, std::vector<Server>& out) {
  auto field = upstream.get("servers");
  if (!field) {
    upstream.report_missing("servers");
    return;
  }
  std::vector<Field> items = sequence_items(diag, *field);
  if (items.empty() && (field->node.IsNull() || field->node.IsSequence()))
    field->error(diag, "at least one server is required");

  std::vector<AddressUse> addresses;
  for (const Field& item : items) {
    Server server;
    MapReader reader(diag, item, {"address", "weight", "max_concurrent"});
    if (reader.require("address", server.address, address())) {
      Field at = *reader.get("address");
      if (server.address.port == 0)
        at.error(diag, "port 0 is only for listening; an upstream server needs its real port");
      else
        addresses.push_back(AddressUse{server.address, at, item.path});
    }
    reader.read("weight", server.weight, integer<uint32_t>(1, 1000));
    load_max_concurrent(reader, server);
    out.push_back(std::move(server));
  }
  // Listing a server twice would silently double its share of traffic.
  report_reused_addresses(diag, std::move(addresses));
}

std::optional<HealthCheck> load_health_check(Diagnostics& diag, const MapReader& upstream) {
  if (!upstream.has("health_check")) return std::nullopt;  // absent = no active checks
  HealthCheck check;
  MapReader reader =
      upstream.child("health_check", {"path", "interval", "timeout", "healthy_after", "unhealthy_after"});
  reader.read("path", check.path, url_path());
  bool interval_ok = reader.read("interval", check.interval, positive_duration());
  bool timeout_ok = reader.read("timeout", check.timeout, positive_duration());
  reader.read("healthy_after", check.healthy_after, integer<uint32_t>(1, 100));
  reader.read("unhealthy_after", check.unhealthy_after, integer<uint32_t>(1, 100));
  // Probes are sent every interval; one still running at the next would overlap.
  if (interval_ok && timeout_ok && check.timeout >= check.interval) {
    if (auto timeout = reader.get("timeout")) {
      timeout->error(diag, "must be less than interval (" + format_duration(check.interval) + "), got " +
                               format_duration(check.timeout));
    } else {
      // The default timeout is less than the default interval, so interval was given.
      Field interval = reader.get("interval").value_or(reader.self());
      interval.error(diag, "must be greater than timeout (" + format_duration(check.timeout) + ", the default), got " +
                               format_duration(check.interval));
    }
  }
  return check;
}

void load_upstream(Diagnostics& diag, const Field& field, Upstream& out) {
  MapReader reader(diag, field, {"servers", "balance", "queue", "keepalive", "timeouts", "retries",
                                 "passive_health", "slow_start", "health_check"});
  load_servers(diag, reader, out.servers);
  reader.read("balance", out.balance,
              one_of<Balance>({Balance::RoundRobin, Balance::LeastConnections, Balance::RandomTwo}));

  MapReader queue =
      reader.child("queue", {"max_length", "timeout", "mode", "interval", "target", "deadline_header"});
  queue.read("max_length", out.queue.max_length, integer<uint32_t>(0, 10'000'000));
  queue.read("timeout", out.queue.timeout, positive_duration());
  queue.read("mode", out.queue.mode, one_of<QueueMode>({QueueMode::Adaptive, QueueMode::Fifo}));
  queue.read("interval", out.queue.interval, positive_duration());
  queue.read("target", out.queue.target, positive_duration());
  if (queue.has("deadline_header")) {
    auto header = queue.get("deadline_header");
    if (header->node.IsScalar() && header->node.Scalar().empty()) out.queue.deadline_header.clear();
    else queue.read("deadline_header", out.queue.deadline_header, header_name());
  }

  MapReader keepalive = reader.child("keepalive", {"max_idle", "idle_timeout"});
  keepalive.read("max_idle", out.keepalive.max_idle, integer<uint32_t>(0, 100'000));
  keepalive.read("idle_timeout", out.keepalive.idle_timeout, positive_duration());

  MapReader timeouts = reader.child("timeouts", {"connect", "response"});
  timeouts.read("connect", out.timeouts.connect, positive_duration());
  timeouts.read("response", out.timeouts.response, positive_duration());

  MapReader retries = reader.child("retries", {"attempts", "budget_percent", "budget_min_per_second"});
  retries.read("attempts", out.retries.attempts, integer<uint32_t>(0, 10));
  retries.read("budget_percent", out.retries.budget_percent, integer<uint32_t>(0, 100));
  retries.read("budget_min_per_second", out.retries.budget_min_per_second, integer<uint32_t>(0, 100'000));

  MapReader passive = reader.child("passive_health", {"failures", "ejection", "max_ejection"});
  passive.read("failures", out.passive_health.failures, integer<uint32_t>(0, 1000));
  passive.read("ejection", out.passive_health.ejection, positive_duration());
  passive.read("max_ejection", out.passive_health.max_ejection, positive_duration());
  reader.read("slow_start", out.slow_start, any_duration());
  out.health_check = load_health_check(diag, reader);
}

}  // namespace

void load_upstreams(LoadState& state, const Field& field) {
  state.upstream_names_known = field.node.IsMap() || field.node.IsNull();
  for (const Entry& entry : mapping_entries(state.diag, field)) {
    Upstream upstream;
    // Kept even when the name or body is bad, so routes naming it do not
    // also get "unknown upstream".
    upstream.name = entry.key;
    parse_field(state.diag, entry.key_field, name());
    load_upstream(state.diag, entry.value, upstream);
    state.config.upstreams.push_back(std::move(upstream));
  }
}

}  // namespace sluice::config
