// Entry points and the top level of sluice.yaml; the sections with lists
// (listeners, routes, upstreams) have their own load_*.cc.
#include "config/load.h"

#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "config/load_internal.h"

namespace sluice::config {
namespace {

uint32_t default_workers() {
  // hardware_concurrency() may return 0 when it cannot tell.
  return std::clamp(std::thread::hardware_concurrency(), 1u, 256u);
}

void load_admin(LoadState& state, const MapReader& admin) {
  SocketAddress listen;
  if (admin.has("listen") && admin.read("listen", listen, address())) {
    state.listen_addresses.push_back(AddressUse{listen, *admin.get("listen"), "admin"});
    state.config.admin.listen = std::move(listen);
  }
}

void load_logging(LoadState& state, const MapReader& logging) {
  Logging& out = state.config.logging;
  logging.read("level", out.level,
               one_of<LogLevel>({LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}));
  MapReader access_log = logging.child("access_log", {"path", "format"});
  access_log.read("path", out.access_log.path, non_empty_text());
  access_log.read("format", out.access_log.format,
                  one_of<AccessLogFormat>({AccessLogFormat::Combined, AccessLogFormat::Json}));
}

void load_document(LoadState& state, const YAML::Node& root) {
  MapReader top(state.diag, Field{root, "", root.Mark()},
                {"workers", "drain_timeout", "listeners", "routes", "upstreams", "admin",
                 "logging"});
  Config& config = state.config;
  config.workers = default_workers();
  top.read("workers", config.workers, integer<uint32_t>(1, 256));
  top.read("drain_timeout", config.drain_timeout, positive_duration());

  if (auto listeners = top.get("listeners"))
    load_listeners(state, *listeners);
  else
    top.report_missing("listeners");
  if (auto upstreams = top.get("upstreams")) load_upstreams(state, *upstreams);
  if (auto routes = top.get("routes")) load_routes(state, *routes);
  load_admin(state, top.child("admin", {"listen"}));
  load_logging(state, top.child("logging", {"level", "access_log"}));

  check_across_sections(state);
}

// The one error of a file that could not be parsed at all.
ConfigErrors parse_error(const std::string& file, const YAML::Mark& mark, std::string message) {
  Diagnostics diag(file);
  diag.error(mark, "", std::move(message));
  return diag.take();
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  return out + message;
}

Result<ConfigPtr, ConfigErrors> load_string(std::string_view yaml, std::string_view file_name) {
  const std::string file(file_name);
  try {
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    if (documents.size() > 1)
      return unexpected(parse_error(file, documents[1].Mark(),
                                    "expected one YAML document, found " + std::to_string(documents.size())));

    LoadState state(file);
    state.config.source = file;
    load_document(state, documents.empty() ? YAML::Node() : documents.front());
    if (state.diag.count() > 0) return unexpected(state.diag.take());
    return std::make_shared<const Config>(std::move(state.config));
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own message for this one is "bad file".
    return unexpected(parse_error(file, e.mark, "nested too deeply"));
  } catch (const YAML::Exception& e) {
    // Syntax errors; e.msg is without yaml-cpp's "error at line..." prefix.
    return unexpected(parse_error(file, e.mark, e.msg));
  } catch (const std::exception& e) {  // e.g. std::bad_alloc: still never thrown at the caller
    return unexpected(ConfigErrors{ConfigError{file, 0, 0, "", std::string("cannot load: ") + e.what()}});
  }
}

Result<ConfigPtr, ConfigErrors> load_file(const std::string& path) {
  auto cannot_read = [&path](int error) {
    return unexpected(ConfigErrors{ConfigError{path, 0, 0, "", std::string("cannot read: ") + std::strerror(error)}});
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return cannot_read(errno);
  std::string text;
  char buffer[16384];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
  int read_error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (read_error != 0) return cannot_read(read_error);
  return load_string(text, path);
}

}  // namespace sluice::config
