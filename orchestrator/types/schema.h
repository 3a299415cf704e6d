// The field schema of every kind the API serves, and of every type those
// kinds contain (core/v1, apps/v1, autoscaling/v1 Scale, coordination.k8s.io/v1,
// meta/v1), as data: per field its JSON name, value type, shape (one, list,
// map, or inline member), the protobuf field number Kubernetes gives it,
// required-ness, pointer-ness (whether a zero is a value) and the
// strategic-merge patch strategy and merge key. One table serves three users:
// protobuf request bodies (api/protobuf.cc), OpenAPI v3 (api/discovery.cc)
// and strict field validation (UnknownFields below).
//
// The per-group tables (schema_meta.cc, schema_core.cc, schema_apps.cc,
// schema_autoscaling.cc, schema_coordination.cc) are extracted from the
// Kubernetes 1.32 Go types by scripts/gen_schema_tables.py. Every struct
// reachable from a served kind is described field by field; there are no
// opaque structures except the two Kubernetes itself leaves free-form
// (RawExtension and FieldsV1: any JSON object).
//
// Pure data and pure functions; never I/O, never state.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace ganglion::orchestrator {

// A field's value: its JSON form, and (after the semicolon) its protobuf wire form.
enum class ValueType : uint8_t {
  kString,       // JSON string; wire type 2
  kInt32,        // JSON number; varint (wire 0), negative values sign-extended to 64 bits
  kInt64,        // JSON number; varint (wire 0)
  kBool,         // JSON true/false; varint (wire 0)
  kDouble,       // JSON number; fixed64 (wire 1)
  kBytes,        // JSON base64 string; wire type 2
  kObject,       // JSON object of FieldSchema::object_type; embedded message (wire 2)
  kQuantity,     // "500m", "1Gi" (or a JSON number); message {string = 1}
  kIntOrString,  // 8080 or "http"; message {type = 1 (0 int, 1 string), intVal = 2, strVal = 3}
  kTime,         // RFC 3339, seconds precision; message {seconds = 1, nanos = 2}, empty = unset
  kMicroTime,    // RFC 3339 with microseconds; same message as kTime
  kRawJson,      // any JSON value (RawExtension, FieldsV1); message {raw = 1 (bytes holding JSON)}
};

enum class Shape : uint8_t {
  kOne,     // one value
  kList,    // JSON array; repeated field
  kMap,     // JSON object string -> value; repeated map entry {key = 1, value = 2}
  kInline,  // an embedded struct (kObject) whose fields appear in the parent's JSON
            // object but which is its own message on the wire (Volume's VolumeSource)
};

enum FieldFlag : uint8_t {
  kRequired = 1,   // no omitempty and not marked optional: OpenAPI lists it as required
  kPointer = 2,    // Go pointer: a zero (0, "", false) is a value, not "unset"
  kOmitEmpty = 4,  // omitted from JSON when zero
};

struct FieldSchema {
  std::string_view json_name;
  Shape shape;
  ValueType type;
  std::string_view object_type;  // kObject: the TypeSchema's name
  int proto_number;              // 0: not on the wire (apiVersion and kind travel in the envelope)
  uint8_t flags;
  std::string_view patch_strategy;  // "", "merge", "retainKeys", "merge,retainKeys", "replace"
  std::string_view merge_key;       // the key a "merge" list of objects merges by

  bool Has(FieldFlag f) const { return (flags & f) != 0; }
};

struct TypeSchema {
  std::string_view name;  // OpenAPI name: "io.k8s.api.core.v1.Container"
  std::span<const FieldSchema> fields;
};

// Every described type, by name; null if the name is unknown.
const TypeSchema* FindTypeSchema(std::string_view name);
// Every described type (for OpenAPI), in table order.
const std::vector<const TypeSchema*>& AllTypeSchemas();
// "io.k8s.api.apps.v1.Deployment" for ("apps", "v1", "Deployment"); core is "",
// coordination.k8s.io is "coordination".
std::string SchemaNameOf(std::string_view group, std::string_view version, std::string_view kind);
// The schema of a kind, or null if no table describes it.
const TypeSchema* SchemaOfKind(std::string_view group, std::string_view version,
                               std::string_view kind);
// Field `json_name` of `type`, looking through inline members; null if none.
const FieldSchema* FindField(const TypeSchema& type, std::string_view json_name);
// A one-line description of a type for OpenAPI and `kubectl explain` ("" if none).
std::string_view TypeDescription(std::string_view name);
// A one-line description of a field of the type named `type_name` ("" if none;
// only the fields users set most have one).
std::string_view FieldDescription(std::string_view type_name, std::string_view field);

// Unknown fields are reported up to this many per object (Kubernetes lists
// them all; a body full of typos needs no longer error than this).
inline constexpr size_t kUnknownFieldsReportedMax = 20;
// Deeper JSON than this is not walked (and reported as an unknown field at the
// cut): no served type nests anywhere near it.
inline constexpr int kSchemaDepthMax = 48;

// The paths of the fields of `object` that `type`'s schema does not know, at
// any depth, in Kubernetes' notation ("spce",
// "spec.template.spec.containers[0].imagePullPolcy", "metadata.lables"),
// at most kUnknownFieldsReportedMax of them. With `drop`, every unknown field
// is also removed from `object` (what decoding into Kubernetes' typed objects
// does). Values of the wrong JSON type are not judged here (validation's job).
std::vector<std::string> UnknownFields(const TypeSchema& type, nlohmann::json& object, bool drop);

// The first value of `object` whose JSON type its field's schema does not
// allow (a string where an int32 belongs, an object where a list does), as Go's
// JSON decoder words it for Kubernetes' typed objects: `json: cannot unmarshal
// string into Go struct field DeploymentSpec.spec.replicas of type int32`; or
// "" if every known field's value has its type. null is allowed anywhere (it
// means "unset"); unknown fields are not judged (UnknownFields is).
std::string TypeMismatch(const TypeSchema& type, const nlohmann::json& object);

// Removes every known field whose value is null, at any depth (in objects,
// list elements and map values of object type): decoding into Kubernetes'
// typed objects reads null as "unset", so defaulting must see it absent.
void RemoveNullFields(const TypeSchema& type, nlohmann::json& object);

namespace schema_tables {
std::vector<TypeSchema> MetaV1Schemas();
std::vector<TypeSchema> CoreV1Schemas();
std::vector<TypeSchema> AppsV1Schemas();
std::vector<TypeSchema> AutoscalingV1Schemas();
std::vector<TypeSchema> CoordinationV1Schemas();
}  // namespace schema_tables

}  // namespace ganglion::orchestrator
