// Small text helpers shared by the config loader, its messages and dump.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::config {

// `s` in double quotes, with \n, \r, \t, \", \\ and other control bytes
// escaped, so a value can be shown on one line: quoted("ok\n") == "\"ok\\n\"".
std::string quoted(std::string_view s);

std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

// "a, b, c"
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

// The candidate closest to `word` by edit distance (case-insensitive), if it
// is close enough to be the likely intended spelling: at most 2 edits, and
// fewer than the word's length so "x" does not "mean" every short key.
std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace sluice::config
