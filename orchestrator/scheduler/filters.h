// The scheduler's filters and scores: pure functions of a pod and one node
// with what is already counted against it (bound and assumed pods). A filter
// says why a node cannot take the pod, in the words Kubernetes uses, so the
// "0/3 nodes are available: ..." message reads as users know it. Scores rank
// the nodes that pass. Nothing here may read the clock or any shared state.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/scheduler/objects.h"

namespace ganglion::orchestrator::scheduler {

// A node and the pods counted against it.
struct NodeState {
  NodeInfo info;
  bool has_node = false;  // false: pods are bound to a node we have not seen
  Resources requested;    // sum of counted pods' requests
  int64_t nonzero_cpu_milli = 0;
  int64_t nonzero_memory_bytes = 0;
  std::multiset<HostPort> used_ports;
  std::map<std::string, int> pods_by_owner;  // controller uid -> pods

  void Count(const PodUsage& pod);
  void Uncount(const PodUsage& pod);
};

// Kubernetes' wording of each reason a node is filtered out.
inline constexpr char kReasonNotReady[] = "node(s) were not ready";
inline constexpr char kReasonUnschedulable[] = "node(s) were unschedulable";
inline constexpr char kReasonAffinity[] = "node(s) didn't match Pod's node affinity/selector";
inline constexpr char kReasonPorts[] = "node(s) didn't have free ports for the requested pod ports";
inline constexpr char kReasonTooManyPods[] = "Too many pods";
// Others: "Insufficient <resource>", "node(s) had untolerated taint {key: value}".

// Appends why `node` cannot take `pod` (nothing if it can). Filters run in a
// fixed order and stop at the first that fails, as Kubernetes' do; the
// resource filter names every resource that is short.
void Filter(const PodInfo& pod, const NodeState& node, std::vector<std::string>& reasons);

// Individual filters, for tests: true if the node passes.
bool MatchesNodeSelector(const PodInfo& pod, const NodeInfo& node);
bool MatchesRequiredAffinity(const PodInfo& pod, const NodeInfo& node);
bool MatchesTerm(const SelectorTerm& term, const NodeInfo& node);
// The first NoSchedule/NoExecute taint the pod does not tolerate, or null.
const Taint* UntoleratedTaint(const PodInfo& pod, const NodeInfo& node);
bool PortsFree(const PodInfo& pod, const NodeState& node);
// Resources the node lacks for the pod, as reasons ("Insufficient cpu", "Too many pods").
void InsufficientResources(const PodInfo& pod, const NodeState& node,
                           std::vector<std::string>& reasons);

// The failure message over every node: "0/3 nodes are available: 1
// Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
// `reasons` counts nodes per reason.
std::string UnschedulableMessage(size_t nodes, const std::map<std::string, int>& reasons);

// Scores, each 0..100, higher is better.
// Free CPU and memory after placing the pod, averaged (least allocated).
int64_t LeastAllocatedScore(const PodInfo& pod, const NodeState& node);
int CountPreferNoScheduleUntolerated(const PodInfo& pod, const NodeInfo& node);
int OwnerPodsOn(const PodInfo& pod, const NodeState& node);
// The sum of the weights of the preferred node affinity terms the node matches.
int64_t PreferredAffinityWeight(const PodInfo& pod, const NodeInfo& node);

// Weights of the scores in the total.
inline constexpr int64_t kLeastAllocatedWeight = 1;
inline constexpr int64_t kSpreadWeight = 2;
inline constexpr int64_t kTaintWeight = 3;
inline constexpr int64_t kPreferredAffinityWeight = 2;

// The total score of each feasible node (same order): least allocated, plus
// spread of the pod's owner (fewest of its pods scores 100), PreferNoSchedule
// taints (fewest untolerated scores 100) and preferred node affinity (the
// largest matched weight scores 100), each normalized over `feasible`.
std::vector<int64_t> Score(const PodInfo& pod, const std::vector<const NodeState*>& feasible);

}  // namespace ganglion::orchestrator::scheduler
