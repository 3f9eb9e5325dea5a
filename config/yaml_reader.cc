#include "config/yaml_reader.h"

#include <algorithm>
#include <tuple>

namespace sluice::config {
namespace {

// yaml-cpp marks are 0-based; an empty document has no mark at all (-1).
int one_based(int zero_based) { return zero_based < 0 ? 1 : zero_based + 1; }

Field value_field(const YAML::Node& key, const YAML::Node& value, std::string path) {
  return Field{value, std::move(path), value.IsNull() ? key.Mark() : value.Mark()};
}

}  // namespace

void Diagnostics::error(const YAML::Mark& at, std::string path, std::string message) {
  errors_.push_back(ConfigError{file_, one_based(at.line), one_based(at.column), std::move(path), std::move(message)});
}

ConfigErrors Diagnostics::take() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return std::move(errors_);
}

int line_number(const YAML::Mark& mark) { return one_based(mark.line); }

std::string child_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return std::string(parent) + "." + std::string(key);
}

std::string item_path(std::string_view parent, size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Scalar: return quoted(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "null";
}

std::vector<Entry> mapping_entries(Diagnostics& diag, const Field& map) {
  std::vector<Entry> entries;
  if (map.node.IsNull()) return entries;
  if (!map.node.IsMap()) {
    map.error(diag, "expected a mapping, got " + describe(map.node));
    return entries;
  }
  for (const auto& pair : map.node) {
    // Copies: yaml-cpp's iterator hands out temporaries.
    const YAML::Node key = pair.first;
    const YAML::Node value = pair.second;
    if (!key.IsScalar()) {
      diag.error(key.Mark(), map.path, "expected a string key, got " + describe(key));
      continue;
    }
    std::string text = key.Scalar();
    std::string path = child_path(map.path, text);
    auto first = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.key == text; });
    if (first != entries.end()) {
      diag.error(key.Mark(), path,
                 "duplicate key " + quoted(text) + "; first given at line " +
                     std::to_string(line_number(first->key_field.mark)));
      continue;
    }
    entries.push_back(Entry{text, Field{key, path, key.Mark()}, value_field(key, value, path)});
  }
  return entries;
}

std::vector<Field> sequence_items(Diagnostics& diag, const Field& seq) {
  std::vector<Field> items;
  if (seq.node.IsNull()) return items;
  if (!seq.node.IsSequence()) {
    seq.error(diag, "expected a sequence, got " + describe(seq.node));
    return items;
  }
  for (const YAML::Node& item : seq.node) {
    // A null item ("- " alone) has the next token's mark, like a null value.
    items.push_back(Field{item, item_path(seq.path, items.size()), item.IsNull() ? seq.mark : item.Mark()});
  }
  return items;
}

MapReader::MapReader(Diagnostics& diag, const Field& map, std::vector<std::string> allowed_keys)
    : diag_(diag), self_(map), is_mapping_(map.node.IsMap() || map.node.IsNull()) {
  for (auto& entry : mapping_entries(diag, map)) {
    if (std::find(allowed_keys.begin(), allowed_keys.end(), entry.key) != allowed_keys.end()) {
      entries_.push_back(std::move(entry));
      continue;
    }
    std::string message = "unknown key " + quoted(entry.key);
    if (auto guess = closest_match(entry.key, allowed_keys))
      message += "; did you mean " + quoted(*guess) + "?";
    else
      message += "; expected one of " + join(allowed_keys);
    entry.key_field.error(diag, std::move(message));
  }
}

const Entry* MapReader::find(std::string_view key) const {
  for (const auto& entry : entries_)
    if (entry.key == key) return &entry;
  return nullptr;
}

std::optional<Field> MapReader::get(std::string_view key) const {
  if (const Entry* entry = find(key)) return entry->value;
  return std::nullopt;
}

const YAML::Mark& MapReader::key_mark(std::string_view key) const {
  const Entry* entry = find(key);
  return entry ? entry->key_field.mark : self_.mark;
}

MapReader MapReader::child(std::string_view key, std::vector<std::string> allowed_keys) const {
  Field field = get(key).value_or(Field{YAML::Node(), child_path(self_.path, key), self_.mark});
  return MapReader(diag_, field, std::move(allowed_keys));
}

void MapReader::report_missing(std::string_view key) const {
  if (!is_mapping_) return;  // "expected a mapping" already said it all
  self_.error(diag_, "missing required key " + quoted(key));
}

}  // namespace sluice::config
