// The arithmetic of moving a Deployment's pods from its old replica sets to
// the new one: maxSurge/maxUnavailable resolved against spec.replicas, one
// step of RollingUpdate (scale the new set up within the surge, the old ones
// down within the unavailability budget), Recreate (old to zero, wait, new to
// full), and proportional scaling when spec.replicas changes mid-rollout.
// Writes go through the caller's scale function; this file decides sizes.
//
// Pods, not replica-set status, bound every step: a set is taken to keep
// min(spec, available pods it controls) available pods and to have up to
// max(spec, active pods) pods, so a status or cache that lags a deletion
// can never let a step pass replicas + maxSurge pods or go below replicas -
// maxUnavailable available ones.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator::workloads {

struct ReplicaSetView {
  Json object;              // as last read or written
  int64_t replicas = 0;     // spec.replicas
  int64_t active_pods = 0;  // active pods it controls, in the pod cache
  int64_t available_pods = 0;
  absl::Time created = absl::InfinitePast();

  // Available pods it will keep: it deletes any surplus over its spec.
  int64_t KeptAvailable() const { return std::min(replicas, available_pods); }
  // Pods it may have: a surplus lasts until it is deleted.
  int64_t MayHave() const { return std::max(replicas, active_pods); }
};

// Writes spec.replicas (and the replica annotations) of one set; on success
// the view reflects the write.
using ScaleFn = std::function<absl::Status(ReplicaSetView& rs, int64_t replicas)>;

struct Rollout {
  const Json* deployment = nullptr;
  ReplicaSetView* new_rs = nullptr;  // null until the current template has one
  std::vector<ReplicaSetView*> old;  // every other set the deployment controls
  ScaleFn scale;

  std::vector<ReplicaSetView*> All() const;
};

// "25%" or 3 against `total`: percentages round up (surge) or down.
absl::StatusOr<int64_t> ScaledValue(const Json& int_or_percent, int64_t total, bool round_up);
bool IsRollingUpdate(const Json& deployment);
// As Kubernetes resolves them: both 0 after rounding makes maxUnavailable 1;
// maxUnavailable never exceeds replicas; Recreate has neither.
int64_t MaxSurge(const Json& deployment);
int64_t MaxUnavailable(const Json& deployment);

// The size for the new set now: all of spec.replicas for Recreate; for
// RollingUpdate as much as the surge leaves room for.
int64_t NewReplicaSetSize(const Rollout& r, const ReplicaSetView& new_rs);

// RollingUpdate: each returns whether it scaled anything.
absl::StatusOr<bool> ScaleNewForRollingUpdate(Rollout& r);
absl::StatusOr<bool> ScaleOldForRollingUpdate(Rollout& r);

absl::StatusOr<bool> ScaleDownOldForRecreate(Rollout& r);
absl::Status ScaleUpNewForRecreate(Rollout& r);

// spec.replicas changed since an active set was last sized for it.
bool IsScalingEvent(const Rollout& r);
// Resizes the sets for a new spec.replicas: one active set takes all; a
// saturated new set leaves the old ones nothing; otherwise the change is
// shared in proportion to each set's size (RollingUpdate).
absl::Status ScaleProportionally(Rollout& r);
bool IsNewSaturated(const Rollout& r);

}  // namespace ganglion::orchestrator::workloads
