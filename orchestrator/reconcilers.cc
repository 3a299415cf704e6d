// The built-in reconcilers the leader runs, in start order. Each entry names
// a reconciler (the --reconcilers flag selects by these names), its workers,
// and how to make it for a term.
#include "orchestrator/orchestrator.h"
#include "orchestrator/scheduler/scheduler.h"
#include "orchestrator/workloads/workloads.h"

namespace ganglion::orchestrator {

std::vector<ReconcilerSpec> BuiltinReconcilers() {
  std::vector<ReconcilerSpec> specs;
  specs.push_back(workloads::ReplicaSetReconcilerSpec());
  specs.push_back(workloads::DeploymentReconcilerSpec());
  specs.push_back(scheduler::SchedulerSpec());
  return specs;
}

}  // namespace ganglion::orchestrator
