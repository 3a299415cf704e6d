// A Deployment's history as its replica sets carry it: the pod-template-hash
// that names each replica set (fnv32a of the template's canonical JSON, with
// status.collisionCount appended, in the "safe" alphabet), the revision
// annotations (the newest template always has the highest number, so an old
// one rolled back to takes a new number), which replica set is the current
// template's, and which old ones revisionHistoryLimit lets go.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator::workloads {

inline constexpr char kPodTemplateHashLabel[] = "pod-template-hash";
inline constexpr char kRevisionAnnotation[] = "deployment.kubernetes.io/revision";
inline constexpr char kRevisionHistoryAnnotation[] = "deployment.kubernetes.io/revision-history";
inline constexpr char kDesiredReplicasAnnotation[] = "deployment.kubernetes.io/desired-replicas";
inline constexpr char kMaxReplicasAnnotation[] = "deployment.kubernetes.io/max-replicas";

// Maps each byte to "bcdfghjklmnpqrstvwxz2456789" (no vowels: no words).
std::string SafeEncode(std::string_view s);
// The pod-template-hash of `pod_template` (a deployment's spec.template).
// Nulls and empty objects/lists count as absent, in the hash and in equality.
std::string PodTemplateHash(const Json& pod_template, std::optional<int64_t> collision_count);
// Equal pod templates once the pod-template-hash label is ignored.
bool TemplatesEqualIgnoringHash(const Json& a, const Json& b);

// The revision annotation as a number (0 when absent or not a number).
int64_t RevisionOf(const Json& object);
// Annotations a deployment never hands to its replica sets (nor takes back
// on a rollback): kubectl's last-applied configuration and the controller's own.
bool IsControllerAnnotation(const std::string& key);

// Brings `rs`'s annotations to what the current replica set of `deployment`
// carries at `new_revision`: the deployment's own annotations copied, the
// revision raised (never lowered; the replaced number goes to the
// revision-history annotation). `creating` also sets the replica-count
// annotations. Returns whether anything changed.
bool SetNewReplicaSetAnnotations(const Json& deployment, Json& rs, int64_t new_revision,
                                 bool creating, int64_t max_surge);
// Sets desired-replicas and max-replicas; returns whether they changed.
bool SetReplicasAnnotations(Json& rs, int64_t desired, int64_t max);

}  // namespace ganglion::orchestrator::workloads
