// The live status page, loaded in a real headless Chromium against the real
// binary: its script must have fetched /status and drawn the tables.
#include <catch2/catch.hpp>

#include <string>

#include "tests/integration/proxy_fixture.h"
#include "tests/support/http_client.h"

using namespace sluice::itest;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

TEST_CASE("admin page: Chromium renders listeners, routes and servers", "[admin_page]") {
  ProxyFixture f(
      "listeners:\n"
      "  - { name: web, listen: \"127.0.0.1:0\" }\n"
      "routes:\n"
      "  - { name: app, upstream: app }\n"
      "upstreams:\n"
      "  app:\n"
      "    servers: [ { address: \"127.0.0.1:{B0}\", max_concurrent: 8 } ]\n"
      "admin: { listen: \"127.0.0.1:0\" }\n"
      "logging: { level: info, access_log: { path: \"off\" } }\n");
  const uint16_t admin = admin_port(f.sluice());
  for (int i = 0; i < 5; ++i) REQUIRE(get(f.port(), "/").status == 200);

  auto page = get(admin, "/");
  REQUIRE(page.status == 200);
  CHECK(page.header("Content-Type") == "text/html; charset=utf-8");

  std::string shot = std::string(SLUICE_BINARY_DIR) + "/status-page.png";
  // The flags the workplace's probe uses: no sandbox as root, no GPU, and
  // none of Chromium's own network chatter.
  Process chromium({"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--user-data-dir=" + std::string(SLUICE_BINARY_DIR) + "/chromium-profile",
                    "--window-size=1280,760", "--virtual-time-budget=4000",
                    "--screenshot=" + shot, "http://127.0.0.1:" + std::to_string(admin) + "/"});
  REQUIRE(chromium.wait_exit(60s) == 0);
  Process dom({"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync",
               "--user-data-dir=" + std::string(SLUICE_BINARY_DIR) + "/chromium-profile",
               "--virtual-time-budget=4000", "--dump-dom", "http://127.0.0.1:" + std::to_string(admin) + "/"});
  REQUIRE(dom.wait_exit(60s) == 0);
  std::string html = dom.output();
  INFO(html.substr(0, 4000));
  // Drawn by the page's script from /status, not present in the static HTML.
  CHECK(html.find("<td>web</td><td>127.0.0.1:" + std::to_string(f.port()) + "</td>") !=
        std::string::npos);
  CHECK(html.find("<td>app</td><td>127.0.0.1:" + std::to_string(f.backend().port()) + "</td>") !=
        std::string::npos);
  CHECK(html.find("<td>app</td><td>5</td><td>5</td>") != std::string::npos);
  CHECK(html.find("class=\"on\">live</span>") != std::string::npos);
}

}  // namespace
