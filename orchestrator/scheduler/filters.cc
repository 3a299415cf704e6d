#include "orchestrator/scheduler/filters.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::orchestrator::scheduler {

void NodeState::Count(const PodUsage& pod) {
  requested.Add(pod.requests);
  nonzero_cpu_milli += pod.nonzero_cpu_milli;
  nonzero_memory_bytes += pod.nonzero_memory_bytes;
  for (const HostPort& p : pod.host_ports) used_ports.insert(p);
  if (!pod.owner_uid.empty()) pods_by_owner[pod.owner_uid]++;
}

void NodeState::Uncount(const PodUsage& pod) {
  requested.Subtract(pod.requests);
  nonzero_cpu_milli -= pod.nonzero_cpu_milli;
  nonzero_memory_bytes -= pod.nonzero_memory_bytes;
  for (const HostPort& p : pod.host_ports) {
    auto it = used_ports.find(p);
    if (it != used_ports.end()) used_ports.erase(it);
  }
  if (!pod.owner_uid.empty()) {
    auto it = pods_by_owner.find(pod.owner_uid);
    if (it != pods_by_owner.end() && --it->second <= 0) pods_by_owner.erase(it);
  }
}

bool MatchesNodeSelector(const PodInfo& pod, const NodeInfo& node) {
  for (const auto& [key, value] : pod.node_selector) {
    auto it = node.labels.find(key);
    if (it == node.labels.end() || it->second != value) return false;
  }
  return true;
}

namespace {

bool Contains(const std::vector<std::string>& values, const std::string& v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

// Whether `present`/`value` (a label or field of the node) meets `r`.
bool Meets(const Requirement& r, bool present, const std::string& value) {
  switch (r.op) {
    case Requirement::Op::kIn:
      return present && Contains(r.values, value);
    case Requirement::Op::kNotIn:
      return !present || !Contains(r.values, value);
    case Requirement::Op::kExists:
      return present;
    case Requirement::Op::kDoesNotExist:
      return !present;
    case Requirement::Op::kGt:
    case Requirement::Op::kLt: {
      // One integer value; a label that is not an integer never matches.
      int64_t have = 0, want = 0;
      if (!present || r.values.size() != 1 || !absl::SimpleAtoi(value, &have) ||
          !absl::SimpleAtoi(r.values[0], &want)) {
        return false;
      }
      return r.op == Requirement::Op::kGt ? have > want : have < want;
    }
  }
  return false;
}

}  // namespace

bool MatchesTerm(const SelectorTerm& term, const NodeInfo& node) {
  if (term.labels.empty() && term.fields.empty()) return false;
  for (const Requirement& r : term.labels) {
    auto it = node.labels.find(r.key);
    const bool present = it != node.labels.end();
    if (!Meets(r, present, present ? it->second : std::string())) return false;
  }
  for (const Requirement& r : term.fields) {
    // metadata.name is the only field a node selector may name.
    if (r.key != "metadata.name" || !Meets(r, true, node.name)) return false;
  }
  return true;
}

bool MatchesRequiredAffinity(const PodInfo& pod, const NodeInfo& node) {
  if (!pod.has_required_affinity) return true;
  for (const SelectorTerm& term : pod.required_terms) {
    if (MatchesTerm(term, node)) return true;
  }
  return false;
}

const Taint* UntoleratedTaint(const PodInfo& pod, const NodeInfo& node) {
  for (const Taint& t : node.taints) {
    if (t.effect != "NoSchedule" && t.effect != "NoExecute") continue;
    if (!ToleratesAny(pod.tolerations, t)) return &t;
  }
  return nullptr;
}

bool PortsFree(const PodInfo& pod, const NodeState& node) {
  for (const HostPort& want : pod.usage.host_ports) {
    for (const HostPort& used : node.used_ports) {
      if (PortsConflict(want, used)) return false;
    }
  }
  return true;
}

void InsufficientResources(const PodInfo& pod, const NodeState& node,
                           std::vector<std::string>& reasons) {
  const Resources& want = pod.usage.requests;
  const Resources& have = node.info.allocatable;
  const Resources& used = node.requested;
  if (have.pods - used.pods < want.pods) reasons.push_back(kReasonTooManyPods);
  if (want.cpu_milli > 0 && have.cpu_milli - used.cpu_milli < want.cpu_milli) {
    reasons.push_back("Insufficient cpu");
  }
  if (want.memory_bytes > 0 && have.memory_bytes - used.memory_bytes < want.memory_bytes) {
    reasons.push_back("Insufficient memory");
  }
  for (const auto& [name, amount] : want.scalar) {
    if (amount <= 0) continue;
    auto h = have.scalar.find(name);
    auto u = used.scalar.find(name);
    const int64_t free =
        (h == have.scalar.end() ? 0 : h->second) - (u == used.scalar.end() ? 0 : u->second);
    if (free < amount) reasons.push_back(absl::StrCat("Insufficient ", name));
  }
}

void Filter(const PodInfo& pod, const NodeState& node, std::vector<std::string>& reasons) {
  const NodeInfo& n = node.info;
  // Not ready, unless the pod tolerates the taint that marks such nodes
  // (as DaemonSet pods do).
  if (!n.ready &&
      !ToleratesAny(pod.tolerations, {"node.kubernetes.io/not-ready", "", "NoSchedule"})) {
    reasons.push_back(kReasonNotReady);
    return;
  }
  // Cordoned, unless the pod tolerates the taint that marks cordoned nodes.
  if (n.unschedulable &&
      !ToleratesAny(pod.tolerations, {"node.kubernetes.io/unschedulable", "", "NoSchedule"})) {
    reasons.push_back(kReasonUnschedulable);
    return;
  }
  if (!MatchesNodeSelector(pod, n) || !MatchesRequiredAffinity(pod, n)) {
    reasons.push_back(kReasonAffinity);
    return;
  }
  if (const Taint* t = UntoleratedTaint(pod, n)) {
    reasons.push_back(absl::StrCat("node(s) had untolerated taint {", t->key, ": ", t->value, "}"));
    return;
  }
  if (!PortsFree(pod, node)) {
    reasons.push_back(kReasonPorts);
    return;
  }
  InsufficientResources(pod, node, reasons);
}

std::string UnschedulableMessage(size_t nodes, const std::map<std::string, int>& reasons) {
  std::vector<std::string> parts;
  for (const auto& [reason, count] : reasons) parts.push_back(absl::StrCat(count, " ", reason));
  std::sort(parts.begin(), parts.end());
  std::string message = absl::StrCat("0/", nodes, " nodes are available");
  if (parts.empty()) return message + ".";
  return absl::StrCat(message, ": ", absl::StrJoin(parts, ", "), ".");
}

namespace {

int64_t FreeShare(int64_t allocatable, int64_t requested) {
  if (allocatable <= 0 || requested > allocatable) return 0;
  return (allocatable - requested) * 100 / allocatable;
}

}  // namespace

int64_t LeastAllocatedScore(const PodInfo& pod, const NodeState& node) {
  const Resources& a = node.info.allocatable;
  const int64_t cpu = FreeShare(a.cpu_milli, node.nonzero_cpu_milli + pod.usage.nonzero_cpu_milli);
  const int64_t memory =
      FreeShare(a.memory_bytes, node.nonzero_memory_bytes + pod.usage.nonzero_memory_bytes);
  return (cpu + memory) / 2;
}

int CountPreferNoScheduleUntolerated(const PodInfo& pod, const NodeInfo& node) {
  int count = 0;
  for (const Taint& t : node.taints) {
    if (t.effect == "PreferNoSchedule" && !ToleratesAny(pod.tolerations, t)) ++count;
  }
  return count;
}

int OwnerPodsOn(const PodInfo& pod, const NodeState& node) {
  if (pod.usage.owner_uid.empty()) return 0;
  auto it = node.pods_by_owner.find(pod.usage.owner_uid);
  return it == node.pods_by_owner.end() ? 0 : it->second;
}

int64_t PreferredAffinityWeight(const PodInfo& pod, const NodeInfo& node) {
  int64_t sum = 0;
  for (const auto& [weight, term] : pod.preferred_terms) {
    if (MatchesTerm(term, node)) sum += weight;
  }
  return sum;
}

std::vector<int64_t> Score(const PodInfo& pod, const std::vector<const NodeState*>& feasible) {
  std::vector<int64_t> total(feasible.size(), 0), preferred(feasible.size(), 0);
  std::vector<int> owned(feasible.size(), 0), tainted(feasible.size(), 0);
  int owned_max = 0, tainted_max = 0;
  int64_t preferred_max = 0;
  for (size_t i = 0; i < feasible.size(); ++i) {
    total[i] = kLeastAllocatedWeight * LeastAllocatedScore(pod, *feasible[i]);
    owned[i] = OwnerPodsOn(pod, *feasible[i]);
    tainted[i] = CountPreferNoScheduleUntolerated(pod, feasible[i]->info);
    if (!pod.preferred_terms.empty())
      preferred[i] = PreferredAffinityWeight(pod, feasible[i]->info);
    owned_max = std::max(owned_max, owned[i]);
    tainted_max = std::max(tainted_max, tainted[i]);
    preferred_max = std::max(preferred_max, preferred[i]);
  }
  // Normalized so the node with the fewest scores 100 and the most scores 0.
  auto fewest_best = [](int count, int max) -> int64_t {
    return max == 0 ? 100 : int64_t{100} * (max - count) / max;
  };
  for (size_t i = 0; i < feasible.size(); ++i) {
    total[i] += kSpreadWeight * fewest_best(owned[i], owned_max);
    total[i] += kTaintWeight * fewest_best(tainted[i], tainted_max);
    if (preferred_max > 0)
      total[i] += kPreferredAffinityWeight * 100 * preferred[i] / preferred_max;
  }
  return total;
}

}  // namespace ganglion::orchestrator::scheduler
