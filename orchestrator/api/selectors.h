// Label and field selectors as kubectl sends them (`-l`, `--field-selector`):
// parsed once per request, then matched against each object. Label
// selectors take equality (=, ==, !=) and set-based (in, notin, exists, !key)
// requirements; field selectors take =, == and != on the fields a type
// declares selectable. A selector that cannot be parsed is an error for the
// caller to report, never "match everything".
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

class LabelSelector {
 public:
  static absl::StatusOr<LabelSelector> Parse(absl::string_view text);
  // A selector from a workload's `spec.selector` (matchLabels/matchExpressions).
  static absl::StatusOr<LabelSelector> FromJson(const Json& selector);
  // `labels`: the object's metadata.labels (null or missing: no labels).
  bool Matches(const Json* labels) const;
  bool empty() const { return requirements_.empty(); }

 private:
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> requirements_;
};

class FieldSelector {
 public:
  // Fails (BadRequest) if a field is not selectable for `type`.
  static absl::StatusOr<FieldSelector> Parse(absl::string_view text, const ResourceType& type);
  bool Matches(const ResourceType& type, const Json& object) const;
  bool empty() const { return requirements_.empty(); }
  // The value an equality requirement pins `field` to ("" if none): lets a
  // watch or list on metadata.name read one key instead of a prefix.
  std::string Pinned(absl::string_view field) const;

 private:
  struct Requirement {
    std::string field;
    bool equals;
    std::string value;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace ganglion::orchestrator
