// What both workload reconcilers need to know about the objects they read:
// times as the API writes them, a pod's life (active, ready, available), the
// order in which a ReplicaSet gives pods up, controller owner references and
// the cache indexes over them. Pure functions of the objects given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator::workloads {

// RFC 3339 at one-second resolution, as metadata and conditions carry it.
std::string Rfc3339(absl::Time t);
std::optional<absl::Time> ParseRfc3339(const Json* value);

std::string NameOf(const Json& o);
std::string NamespaceOf(const Json& o);
std::string UidOf(const Json& o);
std::string ResourceVersionOf(const Json& o);
int64_t GenerationOf(const Json& o);
bool IsTerminating(const Json& o);  // has a deletionTimestamp
// metadata.annotations[key], or "" when absent.
std::string AnnotationOf(const Json& o, const std::string& key);
// spec.replicas of a workload (1 when unset, as defaulting sets it).
int64_t SpecReplicas(const Json& workload);
int64_t StatusInt(const Json& o, const char* field);
std::optional<absl::Time> CreatedAt(const Json& o);

// Not Succeeded, not Failed and not being deleted: a pod that counts.
bool IsPodActive(const Json& pod);
bool IsPodReady(const Json& pod);
// When the pod's Ready condition last became True (nullopt if not ready).
std::optional<absl::Time> PodReadySince(const Json& pod);
// Ready for at least `min_ready_seconds`.
bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds, absl::Time now);
// How long until a ready pod becomes available (zero if it is or is not ready).
absl::Duration UntilAvailable(const Json& pod, int64_t min_ready_seconds, absl::Time now);
int64_t PodRestarts(const Json& pod);
// The order a ReplicaSet deletes pods in when it scales down: true if `a`
// goes before `b`. Unassigned before assigned, Pending before Unknown before
// Running, not ready before ready, ready for less time first, more restarts
// first, newer first; the name breaks ties so the order is total.
bool DeletesBefore(const Json& a, const Json& b);

// The ownerReference with controller: true, or null.
const Json* ControllerRef(const Json& o);
std::string ControllerUid(const Json& o);
// A controller reference to `owner` (blockOwnerDeletion: true).
Json ControllerRefTo(const Json& owner);

// The cache index of objects by their controller's uid.
inline constexpr char kByControllerUid[] = "workloads.controller-uid";
std::vector<std::string> ControllerUidValues(const Json& o);

}  // namespace ganglion::orchestrator::workloads
