// docs/configuration.md must agree with the loader. Its tables have the
// columns | Key | Type | Default | Example | Description |, with Key the full
// path (`listeners[].timeouts.header`, `upstreams.<name>.queue.timeout`) and
// Default a backticked value as flatten() spells it, `required`, `—`, or
// "CPU count" for workers.
#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "config/dump.h"
#include "config_test_support.h"

using namespace sluice::config;

namespace {

const std::string kTableHeader = "| Key | Type | Default | Example | Description |";

// Every default that config.h gives shows up in flatten() of this file:
// one item of each list, an upstream named "app" with health checks on, and
// a route that responds.
constexpr std::string_view kDefaultsYaml =
    "listeners:\n"
    "  - name: web\n"
    "    listen: \"127.0.0.1:8080\"\n"
    "routes:\n"
    "  - name: all\n"
    "    respond: {}\n"
    "upstreams:\n"
    "  app:\n"
    "    servers: [{ address: \"127.0.0.1:5001\" }]\n"
    "    health_check: {}\n";

struct DocRow {
  int line;
  std::string key;       // as documented: listeners[].name, upstreams.<name>.balance
  std::string default_;  // the cell, trimmed
};

std::string trim(const std::string& s) {
  size_t begin = s.find_first_not_of(' ');
  size_t end = s.find_last_not_of(' ');
  return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
}

bool backticked(const std::string& cell) { return cell.size() >= 2 && cell.front() == '`' && cell.back() == '`'; }
std::string unticked(const std::string& cell) { return cell.substr(1, cell.size() - 2); }

std::vector<DocRow> documented_rows() {
  const std::string path = std::string(SLUICE_SOURCE_DIR) + "/docs/configuration.md";
  std::ifstream file(path);
  REQUIRE(file.good());
  std::vector<DocRow> rows;
  std::string line;
  int number = 0;
  bool in_table = false;
  while (std::getline(file, line)) {
    ++number;
    if (line.rfind("| Key", 0) == 0) {
      INFO(path << ":" << number);
      CHECK(line == kTableHeader);
      in_table = true;
      continue;
    }
    if (line.rfind("|", 0) != 0) {
      in_table = false;
      continue;
    }
    if (!in_table || line.rfind("| ---", 0) == 0) continue;
    // Cells never contain "|" (the docs avoid it in examples).
    std::vector<std::string> cells;
    std::stringstream stream(line.substr(1));
    for (std::string cell; std::getline(stream, cell, '|');) cells.push_back(trim(cell));
    INFO(path << ":" << number << ": " << line);
    REQUIRE(cells.size() == 5);
    REQUIRE(backticked(cells[0]));
    rows.push_back(DocRow{number, unticked(cells[0]), cells[2]});
  }
  REQUIRE(rows.size() > 40);  // the parse found the tables
  return rows;
}

// listeners[].name -> listeners[0].name; upstreams.<name>.x -> upstreams.app.x
std::string concrete_key(const std::string& documented) {
  std::string key = std::regex_replace(documented, std::regex(R"(\[\])"), "[0]");
  return std::regex_replace(key, std::regex("<name>"), "app");
}

// The reverse: listeners[3].name -> listeners[].name; upstreams.legacy.x -> upstreams.<name>.x
std::string documented_key(const std::string& concrete) {
  std::string key = std::regex_replace(concrete, std::regex(R"(\[[0-9]+\])"), "[]");
  return std::regex_replace(key, std::regex(R"(^upstreams\.[^.]+\.)"), "upstreams.<name>.");
}

std::map<std::string, std::string> flattened(std::string_view yaml) {
  auto pairs = flatten(*test::load_ok(yaml));
  return {pairs.begin(), pairs.end()};
}

std::set<std::string> keys_of_full_example() {
  auto result = load_file(std::string(SLUICE_SOURCE_DIR) + "/config/examples/full.yaml");
  REQUIRE(result.ok());
  std::set<std::string> keys;
  for (const auto& [key, value] : flatten(**result)) keys.insert(documented_key(key));
  return keys;
}

}  // namespace

TEST_CASE("docs: every documented default is the loader's default") {
  auto actual = flattened(kDefaultsYaml);
  for (const DocRow& row : documented_rows()) {
    INFO("docs/configuration.md:" << row.line << ": `" << row.key << "` documents default " << row.default_);
    if (row.key == "workers") {
      CHECK(row.default_ == "CPU count");
      CHECK(actual.at("workers") == std::to_string(std::clamp(std::thread::hardware_concurrency(), 1u, 256u)));
      continue;
    }
    if (row.default_ == "required" || row.default_ == "—") continue;
    REQUIRE(backticked(row.default_));  // anything else is a typo in the docs
    auto found = actual.find(concrete_key(row.key));
    if (found == actual.end()) {
      FAIL_CHECK("flatten() has no " << concrete_key(row.key));
      continue;
    }
    CHECK(found->second == unticked(row.default_));
  }
}

TEST_CASE("docs: every documented key is one the loader knows") {
  std::set<std::string> known = keys_of_full_example();
  for (const DocRow& row : documented_rows()) {
    // A section such as `upstreams.<name>.health_check` is known through its keys.
    bool found = known.count(row.key) > 0 || std::any_of(known.begin(), known.end(), [&](const std::string& key) {
                   return key.rfind(row.key + ".", 0) == 0 || key.rfind(row.key + "[", 0) == 0;
                 });
    if (!found)
      FAIL_CHECK("docs/configuration.md:" << row.line << ": `" << row.key << "` is not a key flatten() knows");
  }
}

TEST_CASE("docs: every key the loader knows is documented") {
  std::set<std::string> documented;
  for (const DocRow& row : documented_rows()) documented.insert(row.key);
  for (const std::string& key : keys_of_full_example())
    if (documented.count(key) == 0) FAIL_CHECK("`" << key << "` is missing from docs/configuration.md");
}
