#include "orchestrator/scheduler/cluster_state.h"

#include <cassert>
#include <utility>

namespace ganglion::orchestrator::scheduler {

bool ClusterState::UpsertNode(NodeInfo info) {
  NodeState& n = nodes_[info.name];
  const bool changed = !n.has_node || !(n.info == info);
  if (!n.has_node) ++nodes_with_object_;
  n.has_node = true;
  n.info = std::move(info);
  return changed;
}

void ClusterState::RemoveNode(const std::string& name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end() || !it->second.has_node) return;
  it->second.has_node = false;
  --nodes_with_object_;
  DropNodeIfEmpty(it);
}

void ClusterState::DropNodeIfEmpty(std::map<std::string, NodeState>::iterator it) {
  // Pods still bound to a deleted node keep counting until they go.
  if (!it->second.has_node && it->second.requested.pods == 0) nodes_.erase(it);
}

void ClusterState::CountOn(const std::string& pod_key, const std::string& node, PodUsage usage,
                           bool assumed) {
  Uncount(pod_key);
  NodeState& n = nodes_[node];
  if (n.info.name.empty()) n.info.name = node;
  n.Count(usage);
  pods_[pod_key] = Counted{node, std::move(usage), assumed};
  if (assumed) ++assumed_;
}

void ClusterState::CountBound(const std::string& pod_key, const std::string& node, PodUsage usage) {
  CountOn(pod_key, node, std::move(usage), false);
}

void ClusterState::Assume(const std::string& pod_key, const std::string& node, PodUsage usage) {
  CountOn(pod_key, node, std::move(usage), true);
}

bool ClusterState::IsAssumed(const std::string& pod_key) const {
  auto it = pods_.find(pod_key);
  return it != pods_.end() && it->second.assumed;
}

void ClusterState::ForgetAssumed(const std::string& pod_key, const std::string& uid) {
  auto it = pods_.find(pod_key);
  if (it != pods_.end() && it->second.assumed && it->second.usage.uid == uid) Uncount(pod_key);
}

bool ClusterState::Uncount(const std::string& pod_key) {
  auto it = pods_.find(pod_key);
  if (it == pods_.end()) return false;
  auto n = nodes_.find(it->second.node);
  assert(n != nodes_.end());
  n->second.Uncount(it->second.usage);
  if (it->second.assumed) --assumed_;
  pods_.erase(it);
  DropNodeIfEmpty(n);
  return true;
}

bool ClusterState::IsCountedBound(const std::string& pod_key, const std::string& node,
                                  const std::string& uid) const {
  auto it = pods_.find(pod_key);
  return it != pods_.end() && !it->second.assumed && it->second.node == node &&
         it->second.usage.uid == uid;
}

const NodeState* ClusterState::node(const std::string& name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

ClusterState::Decision ClusterState::Schedule(const PodInfo& pod) {
  Decision d;
  std::vector<const NodeState*> feasible;
  feasible.reserve(nodes_with_object_);
  std::vector<std::string> reasons;
  for (const auto& [name, n] : nodes_) {
    if (!n.has_node) continue;
    reasons.clear();
    Filter(pod, n, reasons);
    if (reasons.empty()) {
      feasible.push_back(&n);
    } else {
      for (const std::string& r : reasons) d.reasons[r]++;
    }
  }
  if (feasible.empty()) return d;
  d.reasons.clear();
  const std::vector<int64_t> scores = Score(pod, feasible);
  int64_t best = scores[0];
  for (int64_t s : scores) best = std::max(best, s);
  std::vector<size_t> tied;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (scores[i] == best) tied.push_back(i);
  }
  d.node = feasible[tied[turn_++ % tied.size()]]->info.name;
  return d;
}

}  // namespace ganglion::orchestrator::scheduler
