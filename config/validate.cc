// Checks that look at more than one value at a time.
#include <algorithm>
#include <tuple>

#include "config/load_internal.h"

namespace sluice::config {
namespace {

void resolve_upstream_refs(LoadState& state) {
  if (!state.upstream_names_known) return;
  std::vector<std::string> names;
  for (const auto& upstream : state.config.upstreams) names.push_back(upstream.name);

  for (const UpstreamRef& ref : state.upstream_refs) {
    auto found = std::find(names.begin(), names.end(), ref.name);
    if (found != names.end()) {
      state.config.routes[ref.route].upstream = static_cast<size_t>(found - names.begin());
      continue;
    }
    std::string message = "unknown upstream " + quoted(ref.name);
    if (names.empty())
      message += "; no upstreams are defined";
    else if (auto guess = closest_match(ref.name, names))
      message += "; did you mean " + quoted(*guess) + "?";
    else
      message += "; defined upstreams: " + join(names);
    ref.field.error(state.diag, std::move(message));
  }
}

}  // namespace

void report_reused_addresses(Diagnostics& diag, std::vector<AddressUse> uses) {
  // In file order, so the error lands on the second use wherever the
  // sections are (admin may come before the listeners).
  std::stable_sort(uses.begin(), uses.end(), [](const AddressUse& a, const AddressUse& b) {
    return std::tie(a.field.mark.line, a.field.mark.column) < std::tie(b.field.mark.line, b.field.mark.column);
  });
  for (size_t i = 0; i < uses.size(); ++i) {
    if (uses[i].address.port == 0) continue;
    for (size_t j = 0; j < i; ++j) {
      const SocketAddress& earlier = uses[j].address;
      if (!earlier.overlaps(uses[i].address)) continue;
      const std::string relation = earlier.same_endpoint(uses[i].address)
                                       ? " already used by "
                                       : " overlaps " + quoted(earlier.text) + " of ";
      uses[i].field.error(diag, "address " + quoted(uses[i].address.text) + relation + uses[j].owner + " at line " +
                                    std::to_string(line_number(uses[j].field.mark)));
      break;
    }
  }
}

void UniqueNames::add(Diagnostics& diag, const std::string& name, const Field& at, const std::string& owner) {
  auto [it, inserted] = seen_.emplace(name, First{owner, line_number(at.mark)});
  if (!inserted)
    at.error(diag, "duplicate " + kind_ + " " + quoted(name) + "; already used by " + it->second.owner + " at line " +
                       std::to_string(it->second.line));
}

void check_across_sections(LoadState& state) {
  resolve_upstream_refs(state);
  report_reused_addresses(state.diag, state.listen_addresses);
}

}  // namespace sluice::config
