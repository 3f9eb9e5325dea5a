// Entry points and the top level of sluice.yaml; the sections with lists
// (listeners, routes, upstreams) have their own load_*.cc.
#include "config/load.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
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

void load_buffering(LoadState& state, const MapReader& buffering) {
  Buffering& out = state.config.buffering;
  buffering.read("request_memory", out.request_memory, size_between(0, 1024 * MiB));
  buffering.read("response_memory", out.response_memory, size_between(0, 1024 * MiB));
  // Relative would depend on the directory sluice happens to start in.
  buffering.read("temp_dir", out.temp_dir,
                 Parser<std::string>{"an absolute directory path", [](std::string_view s) -> Result<std::string> {
                   if (s.empty() || s.front() != '/') return unexpected("must be an absolute path, got " + quoted(s));
                   return std::string(s);
                 }});
  buffering.read("max_response_file", out.max_response_file, any_size());
}

void load_document(LoadState& state, const YAML::Node& root) {
  MapReader top(state.diag, Field{root, "", root.Mark()},
                {"workers", "io_threads", "busy_poll_us", "route_on_loop_us", "drain_timeout", "listeners", "routes",
                 "upstreams", "admin", "logging", "buffering"});
  Config& config = state.config;
  config.workers = default_workers();
  top.read("workers", config.workers, integer<uint32_t>(1, 256));
  top.read("io_threads", config.io_threads, integer<uint32_t>(1, 64));
  top.read("busy_poll_us", config.busy_poll_us, integer<uint32_t>(0, 1000));
  top.read("route_on_loop_us", config.route_on_loop_us, integer<uint32_t>(0, 100000));
  top.read("drain_timeout", config.drain_timeout, positive_duration());

  if (auto listeners = top.get("listeners"))
    load_listeners(state, *listeners);
  else
    top.report_missing("listeners");
  if (auto upstreams = top.get("upstreams")) load_upstreams(state, *upstreams);
  if (auto routes = top.get("routes")) load_routes(state, *routes);
  load_admin(state, top.child("admin", {"listen"}));
  load_logging(state, top.child("logging", {"level", "access_log"}));
  load_buffering(state,
                 top.child("buffering", {"request_memory", "response_memory", "temp_dir", "max_response_file"}));

  check_across_sections(state);
}

// Where the documents of a YAML stream start, and their root nodes. Counted
// with our own loop rather than YAML::LoadAll: on a stray flow indicator
// such as a leading "," yaml-cpp 0.7 (Debian 12) reports empty documents at
// the same place forever, and LoadAll collects them until memory runs out
// (jbeder/yaml-cpp#1040; found by tests/fuzz/config_fuzz).
class DocumentMarks final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  std::vector<YAML::Mark> roots;

  void OnDocumentStart(const YAML::Mark& mark) override {
    starts.push_back(mark);
    want_root_ = true;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

  // False when the last document started where the one before it did.
  bool progressing() const { return starts.size() < 2 || starts.back().pos != starts[starts.size() - 2].pos; }

 private:
  void node(const YAML::Mark& mark) {
    if (want_root_) roots.push_back(mark);
    want_root_ = false;
  }
  bool want_root_ = false;
};

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
    const std::string text(yaml);
    DocumentMarks documents;
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    while (parser.HandleNextDocument(documents)) {
      if (!documents.progressing()) {
        const size_t at = static_cast<size_t>(documents.starts.back().pos);
        return unexpected(parse_error(file, documents.starts.back(),
                                      "unexpected " + quoted(at < text.size() ? text.substr(at, 1) : "")));
      }
    }
    if (documents.starts.size() > 1)
      return unexpected(parse_error(file, documents.roots.size() > 1 ? documents.roots[1] : documents.starts[1],
                                    "expected one YAML document, found " + std::to_string(documents.starts.size())));
    // One document (or none): the parse above has vouched for it.
    const YAML::Node root = documents.starts.empty() ? YAML::Node() : YAML::Load(text);

    LoadState state(file);
    state.config.source = file;
    load_document(state, root);
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
