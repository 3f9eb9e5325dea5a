#include "proxy/path.h"

#include "proxy/http_util.h"

namespace sluice::proxy {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Bytes that never belong in a request-target: controls, SP, DEL, and '#'
// (fragments stay with the client). Bytes >= 0x80 are let through: clients
// do send raw UTF-8, and nginx accepts it too.
bool forbidden_in_target(char c) {
  auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f || c == '#';
}

// A byte an app may take for "/": "\" (IIS), or, decoded, either.
bool slash_like(char c) { return c == '/' || c == '\\'; }

// The length of the path separator at raw[j]: 1 for "/"; with Decode also
// 1 for "\" and 3 for "%2F" or "%5C"; 0 if there is none there.
size_t separator_at(std::string_view raw, size_t j, config::EncodedSlashes slashes) {
  if (raw[j] == '/') return 1;
  if (slashes != config::EncodedSlashes::Decode) return 0;
  if (raw[j] == '\\') return 1;
  if (raw[j] == '%' && raw.size() - j >= 3) {
    int hi = hex_value(raw[j + 1]);
    int lo = hex_value(raw[j + 2]);
    if (hi >= 0 && lo >= 0 && slash_like(static_cast<char>(hi * 16 + lo))) return 3;
  }
  return 0;
}

}  // namespace

std::optional<TargetParts> parse_target(std::string_view target) {
  if (target.empty()) return std::nullopt;
  for (char c : target)
    if (forbidden_in_target(c)) return std::nullopt;

  TargetParts parts;
  if (target == "*") {
    parts.form = TargetForm::Asterisk;
    parts.path = target;
    return parts;
  }

  std::string_view rest = target;
  if (target.front() != '/') {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    size_t colon = target.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view scheme = target.substr(0, colon);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return std::nullopt;
    rest = target.substr(colon + 1);
    if (rest.substr(0, 2) != "//") return std::nullopt;
    rest.remove_prefix(2);
    size_t end = rest.find_first_of("/?");
    parts.authority = rest.substr(0, end);
    auto host = host_without_port(parts.authority);  // rejects userinfo ('@')
    if (!host || host->empty()) return std::nullopt;
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    parts.form = TargetForm::Absolute;
  }
  size_t q = rest.find('?');
  parts.path = rest.substr(0, q);
  if (q != std::string_view::npos) parts.query = rest.substr(q);
  return parts;
}

bool normalize_path_into(std::string_view raw, std::string& out, config::EncodedSlashes slashes) {
  const bool reject = slashes == config::EncodedSlashes::Reject;
  const size_t base = out.size();
  if (raw.empty()) {
    out.push_back('/');
    return true;
  }
  if (raw.front() != '/') return false;

  // One segment at a time: copy "/segment" to out, decoding as we go, then
  // look at what was copied. Decoding first means "%2e%2e" is a dot-segment;
  // an encoded slash either ends the segment (Decode) or never becomes a
  // separator, so decoding cannot create segments the loop does not see.
  size_t i = 0;
  const size_t n = raw.size();
  size_t sep = 1;  // raw[i] == '/'
  while (i < n) {  // a separator of `sep` bytes at raw[i]
    const size_t seg = out.size();
    out.push_back('/');
    size_t j = i + sep;
    while (j < n && (sep = separator_at(raw, j, slashes)) == 0) {
      char c = raw[j];
      if (c != '%') {
        if (c == '\\' && reject) return false;
        out.push_back(c);
        ++j;
        continue;
      }
      if (n - j < 3) return false;  // truncated: "%4" or "%"
      int hi = hex_value(raw[j + 1]);
      int lo = hex_value(raw[j + 2]);
      if (hi < 0 || lo < 0) return false;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (slash_like(decoded) && reject) return false;
      if (is_unreserved(decoded)) {
        out.push_back(decoded);
      } else {
        static constexpr char kHex[] = "0123456789ABCDEF";
        out.push_back('%');
        out.push_back(kHex[hi]);
        out.push_back(kHex[lo]);
      }
      j += 3;
    }
    const bool last = j >= n;
    std::string_view copied(out.data() + seg + 1, out.size() - seg - 1);
    if (copied == "." || copied == "..") {
      const bool up = copied.size() == 2;
      out.resize(seg);
      if (up && out.size() > base) out.resize(out.rfind('/'));  // drop the previous segment
      // A final "." or ".." leaves the path ending in "/" ("/a/b/.." -> "/a/").
      if (last) out.push_back('/');
    }
    i = j;
  }
  if (out.size() == base) out.push_back('/');
  return true;
}

std::optional<std::string> normalize_path(std::string_view target, config::EncodedSlashes slashes) {
  auto parts = parse_target(target);
  if (!parts) return std::nullopt;
  if (parts->form == TargetForm::Asterisk) return std::string("*");
  std::string out;
  if (!normalize_path_into(parts->path, out, slashes)) return std::nullopt;
  return out;
}

std::string_view target_query(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q);
}

std::string_view target_authority(std::string_view target) {
  auto parts = parse_target(target);
  return parts ? parts->authority : std::string_view{};
}

}  // namespace sluice::proxy
