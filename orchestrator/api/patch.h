// The three patch types kubectl sends: JSON Patch (RFC 6902) and JSON Merge
// Patch (RFC 7386), both by nlohmann-json, and Kubernetes' strategic merge
// patch with the patch strategies and merge keys of the field schema
// (types/schema.h: containers, env, volumes by name; container ports by
// containerPort, service ports by port; finalizers as a set; ...; a list the
// schema gives no "merge" strategy is replaced) and the $patch, $retainKeys,
// $setElementOrder and
// $deleteFromPrimitiveList directives. Pure functions: a patch that cannot
// apply is an InvalidArgument status, never an exception or a partial result.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

absl::StatusOr<Json> ApplyJsonPatch(const Json& document, const Json& patch);
absl::StatusOr<Json> ApplyMergePatch(const Json& document, const Json& patch);
// `kind`: a served kind or "Scale"; its field schema gives the merge keys.
absl::StatusOr<Json> ApplyStrategicMergePatch(const Json& document, const Json& patch,
                                              std::string_view kind);

}  // namespace ganglion::orchestrator
