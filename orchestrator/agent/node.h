// The Node object and node Lease of an agent (real or hollow): parsing the
// agent's flags into them, building the Node it registers, and the writes
// that register it, renew its lease and refresh its status. All writes go
// through an ObjectClient (the API's own REST semantics, CAS on
// resourceVersion, re-read on conflict).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "orchestrator/reconcile/object_client.h"

namespace ganglion::orchestrator::agent {

using Json = nlohmann::json;

inline constexpr absl::Duration kLeaseRenewInterval = absl::Seconds(10);
inline constexpr int kLeaseDurationSeconds = 40;
inline constexpr const char* kAgentVersion = "v1.32.0-ganglion";

struct NodeConfig {
  std::string name;
  std::string internal_ip = "127.0.0.1";
  int kubelet_port = 0;
  std::map<std::string, std::string> capacity;  // cpu, memory, pods, ...
  std::map<std::string, std::string> labels;
  Json taints = Json::array();
  std::string pod_cidr;
};

// "cpu=4,memory=8Gi,pods=110" / "a=b,c=d".
absl::StatusOr<std::map<std::string, std::string>> ParseKeyValues(const std::string& text);
// "key=value:NoSchedule,key:NoExecute".
absl::StatusOr<Json> ParseTaints(const std::string& text);

Json NodeObject(const NodeConfig& config);
Json NodeStatus(const NodeConfig& config, absl::Time now, absl::Time ready_since);

// Creates the Node if absent (keeping labels and taints of one that exists)
// and writes its status.
absl::Status RegisterNode(ObjectClient& client, const NodeConfig& config, absl::Time ready_since);
absl::Status UpdateNodeStatus(ObjectClient& client, const NodeConfig& config,
                              absl::Time ready_since);
// Creates or renews kube-node-lease/<name>.
absl::Status RenewLease(ObjectClient& client, const std::string& node_name,
                        const std::string& node_uid);

}  // namespace ganglion::orchestrator::agent
