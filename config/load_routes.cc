#include <algorithm>

#include "config/load_internal.h"

namespace sluice::config {
namespace {

// Only YAML 1.2's spellings: "yes", "on" or "1" mean true to some readers
// and are strings to others.
Parser<bool> boolean() {
  return {"true or false", [](std::string_view text) -> Result<bool> {
            if (text == "true") return true;
            if (text == "false") return false;
            return unexpected("expected true or false, got " + quoted(text));
          }};
}

// A mapping of header name -> value (match.headers, respond.headers,
// request_headers.set ...). Names are case-insensitive, so "X-A" and "x-a"
// in one mapping are the same header given twice.
HeaderList load_header_map(Diagnostics& diag, const Field& field, const Parser<std::string>& name_parser) {
  HeaderList headers;
  std::vector<int> lines;
  for (const Entry& entry : mapping_entries(diag, field)) {
    auto name = parse_field(diag, entry.key_field, name_parser);
    auto value = parse_field(diag, entry.value, header_value());
    if (!name || !value) continue;
    auto same = std::find_if(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, *name); });
    if (same != headers.end()) {
      entry.key_field.error(diag, "duplicate header " + quoted(*name) + "; first given at line " +
                                      std::to_string(lines[static_cast<size_t>(same - headers.begin())]));
      continue;
    }
    headers.emplace_back(std::move(*name), std::move(*value));
    lines.push_back(line_number(entry.key_field.mark));
  }
  return headers;
}

std::vector<std::string> load_list(Diagnostics& diag, const Field& field, const Parser<std::string>& parser) {
  std::vector<std::string> out;
  for (const Field& item : sequence_items(diag, field))
    if (auto value = parse_field(diag, item, parser)) out.push_back(std::move(*value));
  return out;
}

PathMatch path_kind(std::string_view key) {
  if (key == "path_exact") return PathMatch::Exact;
  if (key == "path_prefix") return PathMatch::Prefix;
  if (key == "path_regex") return PathMatch::Regex;
  return PathMatch::Any;
}

void load_path_match(Diagnostics& diag, const MapReader& reader, RouteMatch& out) {
  const Entry* first = nullptr;
  for (const Entry& entry : reader.entries()) {
    PathMatch kind = path_kind(entry.key);
    if (kind == PathMatch::Any) continue;
    if (first) {
      entry.key_field.error(diag, "only one of path_exact, path_prefix or path_regex may be set; " +
                                      quoted(first->key) + " is already set");
      continue;
    }
    first = &entry;
    if (kind == PathMatch::Regex) {
      auto re = parse_field(diag, entry.value, regex());
      if (!re) continue;
      out.path_regex = std::move(*re);
    } else if (!parse_field(diag, entry.value, url_path())) {
      continue;
    }
    out.path_kind = kind;
    out.path = entry.value.node.Scalar();
  }
}

void load_match(Diagnostics& diag, const MapReader& reader, RouteMatch& out) {
  reader.read("host", out.host, host_pattern());
  load_path_match(diag, reader, out);
  if (auto methods = reader.get("methods")) {
    out.methods = load_list(diag, *methods, http_method());
    if (methods->node.IsSequence() && methods->node.size() == 0)
      methods->error(diag, "must list at least one method; leave \"methods\" out to match any");
  }
  if (auto headers = reader.get("headers")) out.headers = load_header_map(diag, *headers, header_name());
}

Respond load_respond(Diagnostics& diag, const MapReader& reader) {
  Respond respond;
  reader.read("status", respond.status, integer<uint16_t>(200, 599));
  reader.read("body", respond.body, text());
  if (auto headers = reader.get("headers")) respond.headers = load_header_map(diag, *headers, editable_header_name());
  return respond;
}

HeaderEdits load_header_edits(Diagnostics& diag, const MapReader& reader, const Parser<std::string>& removable) {
  HeaderEdits edits;
  if (auto set = reader.get("set")) edits.set = load_header_map(diag, *set, editable_header_name());
  if (auto remove = reader.get("remove")) edits.remove = load_list(diag, *remove, removable);
  return edits;
}

// A route either proxies (upstream) or answers itself (respond); rewrite and
// request_headers only mean something when there is a request to forward.
void check_route_kind(Diagnostics& diag, const MapReader& reader) {
  const Field& route = reader.self();
  bool proxies = reader.has("upstream");
  bool responds = reader.has("respond");
  if (proxies && responds) {
    const YAML::Mark& second = reader.key_mark("upstream").pos > reader.key_mark("respond").pos
                                   ? reader.key_mark("upstream")
                                   : reader.key_mark("respond");
    diag.error(second, route.path, "\"upstream\" and \"respond\" are mutually exclusive; use one");
  } else if (!proxies && !responds) {
    route.error(diag, "needs \"upstream\" (to proxy) or \"respond\" (to answer directly)");
  } else if (responds) {
    for (const char* key : {"rewrite", "request_headers", "buffer_request", "buffer_response"})
      if (reader.has(key))
        diag.error(reader.key_mark(key), child_path(route.path, key), "only allowed on routes with \"upstream\"");
  }
}

}  // namespace

void load_routes(LoadState& state, const Field& field) {
  Diagnostics& diag = state.diag;
  UniqueNames names("route name");
  for (const Field& item : sequence_items(diag, field)) {
    Route route;
    MapReader reader(diag, item,
                     {"name", "match", "upstream", "respond", "rewrite", "request_headers", "response_headers",
                      "priority", "buffer_request", "buffer_response"});
    if (reader.require("name", route.name, name())) names.add(diag, route.name, *reader.get("name"), item.path);
    load_match(diag, reader.child("match", {"host", "path_exact", "path_prefix", "path_regex", "methods", "headers"}),
               route.match);

    std::string upstream;
    if (reader.has("upstream") && reader.read("upstream", upstream, non_empty_text()))
      state.upstream_refs.push_back(UpstreamRef{state.config.routes.size(), upstream, *reader.get("upstream")});
    if (reader.has("respond"))
      route.respond = load_respond(diag, reader.child("respond", {"status", "body", "headers"}));

    MapReader rewrite = reader.child("rewrite", {"strip_prefix", "add_prefix"});
    rewrite.read("strip_prefix", route.rewrite.strip_prefix, url_path());
    rewrite.read("add_prefix", route.rewrite.add_prefix, url_path());
    route.request_headers =
        load_header_edits(diag, reader.child("request_headers", {"set", "remove"}), removable_request_header());
    route.response_headers =
        load_header_edits(diag, reader.child("response_headers", {"set", "remove"}), editable_header_name());
    reader.read("buffer_request", route.buffer_request, boolean());
    reader.read("buffer_response", route.buffer_response, boolean());
    reader.read("priority", route.priority, one_of<Priority>({Priority::High, Priority::Normal, Priority::Low}));
    check_route_kind(diag, reader);
    state.config.routes.push_back(std::move(route));
  }
}

}  // namespace sluice::config
