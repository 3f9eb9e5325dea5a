// Internal to the loader: state shared by the section readers (load*.cc)
// and the checks across sections (validate.cc).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config {

// A route's `upstream: name`, resolved once every upstream has been read
// (upstreams may come after routes in the file).
struct UpstreamRef {
  size_t route = 0;
  std::string name;
  Field field;
};

// An address as used by a listener, the admin endpoint or a server, for the
// checks that no address is used twice.
struct AddressUse {
  SocketAddress address;
  Field field;
  std::string owner;  // "listeners[0]", "admin", "upstreams.app.servers[1]"
};

struct LoadState {
  explicit LoadState(std::string file) : diag(std::move(file)) {}

  Diagnostics diag;
  Config config;
  std::vector<UpstreamRef> upstream_refs;
  // False when `upstreams` was not a mapping: then every reference would look
  // unknown, so references are not checked.
  bool upstream_names_known = true;
  std::vector<AddressUse> listen_addresses;  // only those that parsed
};

void load_listeners(LoadState& state, const Field& listeners);
void load_routes(LoadState& state, const Field& routes);
void load_upstreams(LoadState& state, const Field& upstreams);

// Checks that need the whole file: route -> upstream references, listening
// addresses shared between listeners and admin.
void check_across_sections(LoadState& state);

// Reports each address that is the same endpoint as one before it in the
// file, whatever its spelling:
//   address "127.0.0.1:8080" already used by listeners[0] at line 5
// Port 0 is skipped: every bind to it gets a different free port.
void report_reused_addresses(Diagnostics& diag, std::vector<AddressUse> uses);

// Reports a name given twice, at the second one, saying where the first was:
//   duplicate route name "api"; already used by routes[0] at line 12
class UniqueNames {
 public:
  explicit UniqueNames(std::string kind) : kind_(std::move(kind)) {}

  // `owner` is what holds the name, e.g. "routes[1]".
  void add(Diagnostics& diag, const std::string& name, const Field& at, const std::string& owner);

 private:
  struct First {
    std::string owner;
    int line;
  };
  std::string kind_;  // "route name"
  std::map<std::string, First> seen_;
};

}  // namespace sluice::config
