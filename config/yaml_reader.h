// Walking a yaml-cpp tree while collecting errors instead of stopping at the
// first. Internal to the config loader.
//
// yaml-cpp only throws while parsing; walking a built tree with the calls
// used here (Type, Scalar, Mark, iteration) does not.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/load.h"
#include "config/value_parsers.h"

namespace sluice::config {

// Collects errors; file order is restored by take().
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& at, std::string path, std::string message);
  size_t count() const { return errors_.size(); }
  ConfigErrors take();  // sorted by position; stable for errors at one place

 private:
  std::string file_;
  ConfigErrors errors_;
};

// A node, the key path that leads to it, and where errors about it point.
// `mark` is the node's own, except for a null value (`key:` with nothing
// after it), whose yaml-cpp mark is the next token: then it is the key's.
struct Field {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;

  void error(Diagnostics& diag, std::string message) const { diag.error(mark, path, std::move(message)); }
};

// The 1-based line of a yaml-cpp mark, for "already used ... at line 5".
int line_number(const YAML::Mark& mark);

// "listeners" + "name" -> "listeners.name"; "" + "workers" -> "workers".
std::string child_path(std::string_view parent, std::string_view key);
// "listeners" + 0 -> "listeners[0]"
std::string item_path(std::string_view parent, size_t index);

// For "expected X, got Y": "a mapping", "a sequence", "null" or the quoted scalar.
std::string describe(const YAML::Node& node);

// One key: value pair of a mapping, in file order.
struct Entry {
  std::string key;
  Field key_field;  // errors about the key itself (unknown, duplicate) point here
  Field value;
};

// The pairs of a mapping whose keys are free-form (upstream names, header
// names). Reports a non-mapping, non-scalar keys and keys given twice, which
// yaml-cpp accepts silently. A null counts as an empty mapping so that a
// section whose lines are all commented out is simply empty.
std::vector<Entry> mapping_entries(Diagnostics& diag, const Field& map);
// The items of a sequence (null = empty), or none if it is something else.
std::vector<Field> sequence_items(Diagnostics& diag, const Field& seq);

// Parses a scalar with `parser`; reports a non-scalar or a parse error.
template <class T>
std::optional<T> parse_field(Diagnostics& diag, const Field& field, const Parser<T>& parser) {
  if (!field.node.IsScalar()) {
    field.error(diag, "expected " + parser.what + ", got " + describe(field.node));
    return std::nullopt;
  }
  auto value = parser.parse(field.node.Scalar());
  if (!value) {
    field.error(diag, value.error());
    return std::nullopt;
  }
  return std::move(value).value();
}

// A mapping with a fixed set of keys, e.g. a listener. Unknown keys are
// reported (with a did-you-mean) when it is built; then fields are read by
// name. Every read leaves its target untouched when the key is absent, so
// defaults stay those of the struct initialisers in config.h.
class MapReader {
 public:
  MapReader(Diagnostics& diag, const Field& map, std::vector<std::string> allowed_keys);

  const Field& self() const { return self_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  std::optional<Field> get(std::string_view key) const;
  const YAML::Mark& key_mark(std::string_view key) const;  // of a present key
  // Known keys present, in file order.
  const std::vector<Entry>& entries() const { return entries_; }

  // Optional field. False only if present and invalid (already reported).
  template <class T>
  bool read(std::string_view key, T& out, const Parser<T>& parser) const {
    const Entry* entry = find(key);
    if (!entry) return true;
    auto value = parse_field(diag_, entry->value, parser);
    if (value) out = std::move(*value);
    return value.has_value();
  }

  // Required field: its absence is reported too.
  template <class T>
  bool require(std::string_view key, T& out, const Parser<T>& parser) const {
    if (!has(key)) {
      report_missing(key);
      return false;
    }
    return read(key, out, parser);
  }

  void report_missing(std::string_view key) const;

  // A reader for the sub-mapping at `key`; if the key is absent, an empty one
  // (so its reads keep the defaults).
  MapReader child(std::string_view key, std::vector<std::string> allowed_keys) const;

 private:
  const Entry* find(std::string_view key) const;

  Diagnostics& diag_;
  Field self_;
  bool is_mapping_;
  std::vector<Entry> entries_;
};

}  // namespace sluice::config
