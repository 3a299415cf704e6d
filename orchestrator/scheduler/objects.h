// What the scheduler needs of a Pod and of a Node, parsed once from their
// JSON: a pod's effective resource requests, node selector, required node
// affinity, tolerations, host ports and controller owner; a node's labels,
// readiness, taints and allocatable resources. The filters and scores work on
// these, never on JSON, so deciding for one pod over a thousand nodes costs
// no parsing. Parsing must never guess: a malformed quantity is an error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator::scheduler {

// Amounts of resources: CPU in millicores, memory and everything else in
// whole units (bytes for memory and ephemeral-storage).
struct Resources {
  int64_t cpu_milli = 0;
  int64_t memory_bytes = 0;
  int64_t pods = 0;
  // Every other resource by name ("ephemeral-storage", "nvidia.com/gpu").
  std::map<std::string, int64_t> scalar;

  void Add(const Resources& other);
  void Subtract(const Resources& other);
  // Per resource, the larger of the two.
  void Max(const Resources& other);
  bool operator==(const Resources&) const = default;
};

// A resource list ({"cpu": "100m", "memory": "1Gi", ...}).
absl::StatusOr<Resources> ParseResourceList(const Json& list);

struct Taint {
  std::string key, value, effect;  // effect: NoSchedule, PreferNoSchedule, NoExecute
  bool operator==(const Taint&) const = default;
};

struct Toleration {
  std::string key, value, effect;  // empty effect: every effect
  bool exists = false;             // operator Exists (else Equal)
};

// Whether `toleration` tolerates `taint`.
bool Tolerates(const Toleration& toleration, const Taint& taint);
bool ToleratesAny(const std::vector<Toleration>& tolerations, const Taint& taint);

struct HostPort {
  std::string ip;        // "0.0.0.0" when unset: every address
  std::string protocol;  // TCP when unset
  int port = 0;
  auto operator<=>(const HostPort&) const = default;
};

// Whether two host ports cannot both be bound on one node.
bool PortsConflict(const HostPort& a, const HostPort& b);

// One requirement of a node selector term.
struct Requirement {
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
  std::string key;
  Op op = Op::kIn;
  std::vector<std::string> values;
};

// A node selector term: every requirement must hold. A term with none
// matches no node.
struct SelectorTerm {
  std::vector<Requirement> labels;  // matchExpressions, on node labels
  std::vector<Requirement> fields;  // matchFields: metadata.name only
};

// How a pod counts against the node it is bound (or assumed) to.
struct PodUsage {
  std::string uid;
  Resources requests;
  // Requests with a floor for containers that ask for nothing (100m CPU,
  // 200Mi memory), so best-effort pods still spread when scoring.
  int64_t nonzero_cpu_milli = 0;
  int64_t nonzero_memory_bytes = 0;
  std::vector<HostPort> host_ports;
  std::string owner_uid;  // the controller owner's uid, "" if none
};

struct PodInfo {
  std::string key;  // namespace/name
  std::string namespace_name, name;
  PodUsage usage;
  std::map<std::string, std::string> node_selector;
  bool has_required_affinity = false;
  std::vector<SelectorTerm> required_terms;  // any one must match
  // Preferred node affinity: a node matching a term scores its weight.
  std::vector<std::pair<int64_t, SelectorTerm>> preferred_terms;
  std::vector<Toleration> tolerations;
};

absl::StatusOr<PodInfo> ParsePod(const Json& pod);

struct NodeInfo {
  std::string name;
  std::map<std::string, std::string> labels;
  bool ready = false;  // condition Ready is True
  bool unschedulable = false;
  std::vector<Taint> taints;
  Resources allocatable;  // status.allocatable, else status.capacity
  bool operator==(const NodeInfo&) const = default;
};

// A node whose quantities are malformed gets an error (and is not used).
absl::StatusOr<NodeInfo> ParseNode(const Json& node);

// Pending and ours: no node yet, not being deleted, not finished, and
// spec.schedulerName empty or "default-scheduler".
bool WantsScheduling(const Json& pod);
// Succeeded or Failed: it no longer holds resources on its node.
bool IsTerminated(const Json& pod);

}  // namespace ganglion::orchestrator::scheduler
