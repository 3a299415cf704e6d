// The resource registry: every kind the API serves, as data (group, version,
// kind, plural and singular names, scope, short names, categories, verbs,
// subresources) plus its per-type behaviour (defaulting, validation, field
// selectors, the columns `kubectl get` shows). The generic API handler serves
// every resource from this table. It must never do I/O or hold state: the
// hooks are pure functions of the objects they are given.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace ganglion::orchestrator {

using Json = nlohmann::json;

// One invalid field, as a Kubernetes Status cause: reason (FieldValueRequired,
// FieldValueInvalid, FieldValueNotSupported, FieldValueDuplicate,
// FieldValueForbidden, FieldValueTooLong), the field path, a message.
struct FieldError {
  std::string reason;
  std::string field;
  std::string message;
};
using FieldErrors = std::vector<FieldError>;

struct TableColumn {
  std::string name;
  std::string type;    // string, integer, date, ...
  std::string format;  // "name" for the name column
  std::string description;
  int priority = 0;  // 1: only with -o wide
};

struct ResourceType {
  std::string group;  // "" for core
  std::string version;
  std::string kind;
  std::string plural;
  std::string singular;
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<std::string> subresources;  // "status", "scale", "binding", "log"
  // Sets the Kubernetes defaults on a new or updated object (in place).
  std::function<void(Json& object)> set_defaults;
  // Checks a defaulted object; `old` is null on create.
  std::function<FieldErrors(const Json& object, const Json* old)> validate;
  // Columns and the cells of one row (same order), for server-side tables.
  std::vector<TableColumn> columns;
  std::function<Json(const Json& object, absl::Time now)> row_cells;
  // Field-selector labels beyond metadata.name and metadata.namespace, each a
  // dotted path into the object.
  std::vector<std::string> selectable_fields;

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
  std::string ListKind() const { return kind + "List"; }
  bool HasSubresource(std::string_view name) const;
  // "deployments.apps", "pods": how Status messages name the resource.
  std::string QualifiedResource() const { return group.empty() ? plural : plural + "." + group; }
};

ResourceType MakeType(std::string group, std::string version, std::string kind, std::string plural,
                      std::string singular, bool namespaced,
                      std::vector<std::string> short_names = {},
                      std::vector<std::string> categories = {});

// Every resource type, in discovery order.
const std::vector<ResourceType>& AllResourceTypes();
// The type for group/version/plural, or null.
const ResourceType* FindResourceType(std::string_view group, std::string_view version,
                                     std::string_view plural);
// The group versions served, core first: {"", "v1"}, {"apps", "v1"}, ...
std::vector<std::pair<std::string, std::string>> ServedGroupVersions();

// The value a field selector compares for `field` ("metadata.name",
// "spec.nodeName", ...), or nullopt if the type does not support the field.
std::optional<std::string> SelectableFieldValue(const ResourceType& type, const Json& object,
                                                std::string_view field);

// A stored object's JSON with metadata.resourceVersion set to the key's mod
// revision (stored text never carries it). Unparsable text gives {}.
Json ParseStoredObject(std::string_view value, int64_t mod_revision);

// How kubectl shows an age: "42s", "5m3s", "3h", "12d".
std::string HumanDuration(absl::Duration d);
// Age of an object from metadata.creationTimestamp ("<unknown>" if absent).
std::string AgeOf(const Json& object, absl::Time now);

// Per-group tables, in types/core.cc, types/apps.cc, types/coordination.cc.
std::vector<ResourceType> CoreTypes();
std::vector<ResourceType> AppsTypes();
std::vector<ResourceType> CoordinationTypes();

}  // namespace ganglion::orchestrator
