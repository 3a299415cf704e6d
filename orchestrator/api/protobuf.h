// Kubernetes' protobuf request encoding, as kubectl's typed clients send it
// (`kubectl create deployment|service|namespace|configmap`, `kubectl run`, ...):
// the "k8s\0" envelope around a runtime.Unknown {typeMeta, raw, contentEncoding,
// contentType}, whose raw bytes are the object's message. The message is
// decoded by the field schema of its kind (types/schema.h) into the JSON
// kubectl would have sent instead: zero scalars of non-pointer fields are
// omitted (protobuf proto2 always carries them, Go's JSON omits them), unset
// times are omitted, quantities and int-or-strings take their JSON forms.
// A kind without a schema is Unimplemented (the handler answers 415). It must
// never guess: an unknown field number of a known message is skipped (a newer
// client's field), a field whose wire type contradicts the schema, a truncated
// message or nesting deeper than kProtobufDepthMax is InvalidArgument.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "orchestrator/types/registry.h"
#include "orchestrator/types/schema.h"

namespace ganglion::orchestrator {

inline constexpr char kProtobufContentType[] = "application/vnd.kubernetes.protobuf";
// Message nesting depth accepted (a Deployment's deepest path is about 12).
inline constexpr int kProtobufDepthMax = 32;

// An enveloped object (the whole request body).
absl::StatusOr<Json> DecodeProtobufObject(const std::string& body);
// One message of `type`, without the envelope (for tests and nested use).
absl::StatusOr<Json> DecodeProtobufMessage(std::string_view data, const TypeSchema& type);

}  // namespace ganglion::orchestrator
