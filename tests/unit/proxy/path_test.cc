#include "proxy/path.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace sluice::proxy {
namespace {

using config::EncodedSlashes;

// The normalised path, or "<invalid>", so that failures print readably.
std::string norm(std::string_view target, EncodedSlashes slashes = EncodedSlashes::Keep) {
  return normalize_path(target, slashes).value_or("<invalid>");
}

struct Case {
  const char* target;
  const char* normalized;
};

TEST_CASE("normalize_path removes dot-segments", "[path]") {
  const Case cases[] = {
      {"/", "/"},
      {"/a/b", "/a/b"},
      {"/a/./b", "/a/b"},
      {"/a/b/../c", "/a/c"},
      {"/public/../admin", "/admin"},
      {"/a/b/c/../../d", "/a/d"},
      {"/..", "/"},
      {"/../..", "/"},
      {"/../../etc/passwd", "/etc/passwd"},
      {"/.", "/"},
      {"/a/.", "/a/"},
      {"/a/..", "/"},
      {"/a/b/..", "/a/"},
      {"/a/", "/a/"},
      {"/a/...", "/a/..."},
      {"/a/..b/.c", "/a/..b/.c"},
      {"/a/b/./", "/a/b/"},
      {"/a//../b", "/a/b"},
  };
  for (const auto& c : cases) {
    INFO(c.target);
    CHECK(norm(c.target) == c.normalized);
  }
}

TEST_CASE("normalize_path decodes unreserved escapes only", "[path]") {
  const Case cases[] = {
      {"/public/%2e%2e/admin", "/admin"},
      {"/public/%2E%2E/admin", "/admin"},
      {"/public/.%2e/admin", "/admin"},
      {"/a/%2e/b", "/a/b"},
      {"/%41%62%7e%2D%5f", "/Ab~-_"},
      {"/a%2Fb", "/a%2Fb"},
      {"/a%2fb", "/a%2Fb"},
      {"/public/..%2Fadmin", "/public/..%2Fadmin"},
      {"/%2e%2e%2fadmin", "/..%2Fadmin"},  // not a dot-segment: %2F is no separator
      {"/caf%c3%a9", "/caf%C3%A9"},
      {"/a%20b", "/a%20b"},
      {"/%00", "/%00"},
  };
  for (const auto& c : cases) {
    INFO(c.target);
    CHECK(norm(c.target) == c.normalized);
  }
}

TEST_CASE("normalize_path keeps repeated slashes", "[path]") {
  CHECK(norm("//a//b/") == "//a//b/");
  CHECK(norm("/a//") == "/a//");
}

TEST_CASE("normalize_path leaves the query apart", "[path]") {
  CHECK(norm("/a/../b?x=/../%2e&y") == "/b");
  CHECK(norm("/?") == "/");
  CHECK(target_query("/a/b?x=%41&y=/../z") == "?x=%41&y=/../z");
  CHECK(target_query("/a/b?") == "?");
  CHECK(target_query("/a/b").empty());
  CHECK(target_query("http://h/p?q=1") == "?q=1");
}

TEST_CASE("normalize_path takes the path of an absolute-form target", "[path]") {
  CHECK(norm("http://example.com/a/../b?q") == "/b");
  CHECK(norm("HTTPS://example.com:8443/x") == "/x");
  CHECK(norm("http://example.com") == "/");
  CHECK(norm("http://example.com?q") == "/");
  CHECK(norm("http://[::1]:8080/v") == "/v");
  CHECK(target_authority("http://Example.com:8080/x") == "Example.com:8080");
  CHECK(target_authority("/x").empty());
}

TEST_CASE("normalize_path passes the asterisk through", "[path]") {
  CHECK(norm("*") == "*");
}

TEST_CASE("normalize_path rejects invalid targets", "[path]") {
  for (const char* bad : {"", "a/b", "example.com:443", "%2e%2e/admin", "/a%zz", "/a%4", "/a%",
                          "/a%g1", "/a b", "/a\tb", "/a#frag", "/a\x7f", "ftp://h/x",
                          "http:/h/x", "http://", "http:///x", "http://user@h/x", "http://h h/",
                          "**", "/%2"}) {
    INFO(bad);
    CHECK(norm(bad) == "<invalid>");
  }
}

TEST_CASE("parse_target splits the target into its parts", "[path]") {
  auto origin = parse_target("/a/b?c=d");
  REQUIRE(origin);
  CHECK(origin->form == TargetForm::Origin);
  CHECK(origin->authority.empty());
  CHECK(origin->path == "/a/b");
  CHECK(origin->query == "?c=d");

  auto absolute = parse_target("http://h:81/p?q");
  REQUIRE(absolute);
  CHECK(absolute->form == TargetForm::Absolute);
  CHECK(absolute->authority == "h:81");
  CHECK(absolute->path == "/p");
  CHECK(absolute->query == "?q");

  auto star = parse_target("*");
  REQUIRE(star);
  CHECK(star->form == TargetForm::Asterisk);
}

TEST_CASE("normalize_path_into appends and leaves the prefix alone", "[path]") {
  constexpr auto kKeep = EncodedSlashes::Keep;
  std::string out = "keep:";
  CHECK(normalize_path_into("/x/../..", out, kKeep));
  CHECK(out == "keep:/");
  out = "keep:";
  CHECK(normalize_path_into("/a/b/..", out, kKeep));
  CHECK(out == "keep:/a/");
  out.clear();
  CHECK(normalize_path_into("", out, kKeep));
  CHECK(out == "/");
  CHECK_FALSE(normalize_path_into("x", out, kKeep));
}

// What an app that reads "%2F", "%5C" or "\" as "/" would see must not
// slip past a route: each listener refuses such paths, routes them as
// separators, or (keep) as plain characters.
TEST_CASE("normalize_path: encoded slashes and backslashes, per encoded_slashes", "[path]") {
  const char* ambiguous[] = {"/admin%2Fusers", "/admin%2fusers", "/admin%5Cusers", "/admin%5cusers",
                             "/admin\\users", "/public/..%2Fadmin", "/%2e%2e%5cadmin"};
  for (const char* t : ambiguous) {
    INFO(t);
    CHECK(norm(t, EncodedSlashes::Reject) == "<invalid>");
  }
  // Elsewhere in the target, and other escapes, are no concern of Reject.
  CHECK(norm("/a?x=%2F&y=\\", EncodedSlashes::Reject) == "/a");
  CHECK(norm("/a%20b/%41", EncodedSlashes::Reject) == "/a%20b/A");

  const Case decoded[] = {
      {"/admin%2Fusers", "/admin/users"},
      {"/admin%2fusers", "/admin/users"},
      {"/admin%5Cusers", "/admin/users"},
      {"/admin\\users", "/admin/users"},
      // Separators before dot-segments are removed, as the app would.
      {"/public/..%2Fadmin", "/admin"},
      {"/public%2F..%2Fadmin", "/admin"},
      {"/%2e%2e%5cadmin", "/admin"},
      {"/a%2F", "/a/"},
      {"/a%2F%2Fb", "/a//b"},
      {"/a/b%2F..", "/a/"},
  };
  for (const auto& c : decoded) {
    INFO(c.target);
    CHECK(norm(c.target, EncodedSlashes::Decode) == c.normalized);
  }

  CHECK(norm("/admin%2fusers", EncodedSlashes::Keep) == "/admin%2Fusers");
  CHECK(norm("/admin\\users", EncodedSlashes::Keep) == "/admin\\users");
}

}  // namespace
}  // namespace sluice::proxy
