// The scheduler's view of the cluster: every node with the pods counted
// against it, both the pods the cache shows bound there and the pods the
// scheduler has decided for but whose bind is not yet visible ("assumed").
// Counting an assumed pod at once is what keeps two decisions taken before
// either bind lands from booking the same free room twice.
//
// It must never count a pod twice nor on two nodes, and must never forget an
// assumption except when the bind failed or the cache shows the pod. Not
// thread-safe: the scheduler guards it with its lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "orchestrator/scheduler/filters.h"
#include "orchestrator/scheduler/objects.h"

namespace ganglion::orchestrator::scheduler {

class ClusterState {
 public:
  // Adds or replaces a node. True if it is new or changed in something the
  // filters or scores look at (so pods that did not fit may fit now).
  bool UpsertNode(NodeInfo info);
  void RemoveNode(const std::string& name);

  // The cache shows the pod bound to `node` and running or pending: count it
  // there (replacing its assumption, wherever that was).
  void CountBound(const std::string& pod_key, const std::string& node, PodUsage usage);
  // Counts a pod on the node just chosen for it, until the cache shows it
  // (CountBound) or its bind failed (ForgetAssumed).
  void Assume(const std::string& pod_key, const std::string& node, PodUsage usage);
  bool IsAssumed(const std::string& pod_key) const;
  // Stops counting the pod if it is still only assumed, as the pod with
  // `uid` (the bind of that pod failed; a pod of the same name created since
  // keeps its own assumption).
  void ForgetAssumed(const std::string& pod_key, const std::string& uid);
  // Stops counting the pod (deleted, finished). True if it was counted.
  bool Uncount(const std::string& pod_key);
  // Whether the pod with `uid` is counted on `node`, confirmed by the cache.
  bool IsCountedBound(const std::string& pod_key, const std::string& node,
                      const std::string& uid) const;

  struct Decision {
    std::string node;  // empty: no node fits
    // Nodes per reason they were filtered out (when no node fits).
    std::map<std::string, int> reasons;
  };
  // Filters every known node, scores those that pass, and picks the best;
  // ties go to the nodes in turn (each decision moves the turn on).
  Decision Schedule(const PodInfo& pod);

  size_t nodes() const { return nodes_with_object_; }
  size_t assumed() const { return assumed_; }
  const NodeState* node(const std::string& name) const;

 private:
  struct Counted {
    std::string node;
    PodUsage usage;
    bool assumed = false;
  };
  void CountOn(const std::string& pod_key, const std::string& node, PodUsage usage, bool assumed);
  void DropNodeIfEmpty(std::map<std::string, NodeState>::iterator it);

  // By name; a node seen only as the target of bound pods has has_node false.
  std::map<std::string, NodeState> nodes_;
  std::map<std::string, Counted> pods_;  // by pod key
  size_t nodes_with_object_ = 0;
  size_t assumed_ = 0;
  uint64_t turn_ = 0;
};

}  // namespace ganglion::orchestrator::scheduler
