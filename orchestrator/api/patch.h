// The three patch types kubectl sends: JSON Patch (RFC 6902) and JSON Merge
// Patch (RFC 7386), both by nlohmann-json, and Kubernetes' strategic merge
// patch with the built-in merge keys of the served types (containers, env,
// volumes by name; container ports by containerPort, service ports by port;
// ...) and the $patch, $retainKeys, $setElementOrder and
// $deleteFromPrimitiveList directives. Pure functions: a patch that cannot
// apply is an InvalidArgument status, never an exception or a partial result.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

absl::StatusOr<Json> ApplyJsonPatch(const Json& document, const Json& patch);
absl::StatusOr<Json> ApplyMergePatch(const Json& document, const Json& patch);
// `kind` selects kind-specific merge keys (a Service's ports merge by port).
absl::StatusOr<Json> ApplyStrategicMergePatch(const Json& document, const Json& patch,
                                              std::string_view kind);

}  // namespace ganglion::orchestrator
