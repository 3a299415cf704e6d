// Kubernetes' protobuf request encoding, for the kinds kubectl's imperative
// commands send that way (`kubectl create namespace`, `create configmap`):
// the "k8s\0" envelope around a runtime.Unknown, and the field numbers of
// those kinds' messages, decoded into the same JSON the API stores. Any other
// kind is Unimplemented (the handler answers 415 and kubectl users fall back
// to a manifest). It must never guess: an unknown field number of a known
// message is skipped, a malformed message is InvalidArgument.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

inline constexpr char kProtobufContentType[] = "application/vnd.kubernetes.protobuf";

absl::StatusOr<Json> DecodeProtobufObject(const std::string& body);

}  // namespace ganglion::orchestrator
