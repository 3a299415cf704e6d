// The workload reconcilers the leader runs: ReplicaSet (keeps spec.replicas
// pods made from its template, adopting and releasing pods by selector) and
// Deployment (rolls a pod template out through replica sets, RollingUpdate or
// Recreate, with revision history, pause, proportional scaling and the
// Progressing/Available conditions kubectl reads).
//
// Both read only from the host's shared caches and write only through the
// fenced ObjectClient, every update a compare-and-swap on the resourceVersion
// the decision was taken on. They must never create or delete pods twice for
// one gap (expectations bridge a cache that lags their own writes), never
// overwrite a change they did not see, and never scale a rollout past
// replicas + maxSurge pods or below replicas - maxUnavailable available ones.
#pragma once

#include <functional>

#include "absl/time/time.h"
#include "orchestrator/reconcile/host.h"

namespace ganglion::orchestrator::workloads {

struct WorkloadOptions {
  // The wall clock (tests may replace it); availability, minReadySeconds and
  // progress deadlines are measured on it.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // How long a ReplicaSet waits for its cache to show the pods it created or
  // deleted before it decides again regardless (a lost watch event must not
  // wedge it forever).
  absl::Duration expectations_timeout = absl::Minutes(5);
  // Pods one ReplicaSet creates or deletes in one reconcile, at most.
  int burst_replicas_max = 500;
  // Pod creations one ReplicaSet has in flight at once (slow-start batches
  // of 1, 2, 4, ... up to this).
  int creates_in_flight_max = 32;
  int workers = 4;
};

// "replicaset" and "deployment", as registered in orchestrator/reconcilers.cc.
ReconcilerSpec ReplicaSetReconcilerSpec(WorkloadOptions options = {});
ReconcilerSpec DeploymentReconcilerSpec(WorkloadOptions options = {});

}  // namespace ganglion::orchestrator::workloads
