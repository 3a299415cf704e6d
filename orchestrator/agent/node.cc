#include "orchestrator/agent/node.h"

#include <sys/utsname.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator::agent {

namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}
std::string MicroTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

constexpr int kConflictRetriesMax = 5;

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseKeyValues(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("\"", item, "\" is not key=value"));
    }
    out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return out;
}

absl::StatusOr<Json> ParseTaints(const std::string& text) {
  Json out = Json::array();
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t colon = item.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("taint \"", item, "\" is not key[=value]:Effect"));
    }
    const std::string effect(item.substr(colon + 1));
    if (effect != "NoSchedule" && effect != "PreferNoSchedule" && effect != "NoExecute") {
      return absl::InvalidArgumentError(absl::StrCat(
          "taint \"", item, "\": effect must be NoSchedule, PreferNoSchedule or NoExecute"));
    }
    absl::string_view kv = item.substr(0, colon);
    const size_t eq = kv.find('=');
    Json taint = {{"key", std::string(kv.substr(0, eq))}, {"effect", effect}};
    if (eq != absl::string_view::npos) taint["value"] = std::string(kv.substr(eq + 1));
    out.push_back(taint);
  }
  return out;
}

Json NodeObject(const NodeConfig& config) {
  Json labels = {{"kubernetes.io/hostname", config.name},
                 {"kubernetes.io/os", "linux"},
                 {"kubernetes.io/arch", "amd64"},
                 {"beta.kubernetes.io/os", "linux"},
                 {"beta.kubernetes.io/arch", "amd64"}};
  for (const auto& [k, v] : config.labels) labels[k] = v;
  Json spec = Json::object();
  if (!config.taints.empty()) spec["taints"] = config.taints;
  if (!config.pod_cidr.empty()) {
    spec["podCIDR"] = config.pod_cidr;
    spec["podCIDRs"] = Json::array({config.pod_cidr});
  }
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", config.name}, {"labels", labels}}},
          {"spec", spec}};
}

Json NodeStatus(const NodeConfig& config, absl::Time now, absl::Time ready_since) {
  static const std::string kernel = [] {
    utsname u;
    return uname(&u) == 0 ? std::string(u.release) : std::string();
  }();
  Json capacity = Json::object();
  for (const auto& [k, v] : config.capacity) capacity[k] = v;
  auto condition = [&](const char* type, const char* status, const char* reason,
                       const char* message) {
    return Json{{"type", type},
                {"status", status},
                {"reason", reason},
                {"message", message},
                {"lastHeartbeatTime", Rfc3339(now)},
                {"lastTransitionTime", Rfc3339(ready_since)}};
  };
  return {
      {"capacity", capacity},
      {"allocatable", capacity},
      {"addresses", Json::array({{{"type", "InternalIP"}, {"address", config.internal_ip}},
                                 {{"type", "Hostname"}, {"address", config.name}}})},
      {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", config.kubelet_port}}}}},
      {"nodeInfo",
       {{"machineID", ""},
        {"systemUUID", ""},
        {"bootID", ""},
        {"kernelVersion", kernel},
        {"osImage", "Ganglion process runtime"},
        {"containerRuntimeVersion", "process://ganglion-agent"},
        {"kubeletVersion", kAgentVersion},
        {"kubeProxyVersion", ""},
        {"operatingSystem", "linux"},
        {"architecture", "amd64"}}},
      {"conditions", Json::array({condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                                            "ganglion-agent has sufficient memory available"),
                                  condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                                            "ganglion-agent has no disk pressure"),
                                  condition("PIDPressure", "False", "KubeletHasSufficientPID",
                                            "ganglion-agent has sufficient PID available"),
                                  condition("Ready", "True", "KubeletReady",
                                            "ganglion-agent is posting ready status")})}};
}

absl::Status UpdateNodeStatus(ObjectClient& client, const NodeConfig& config,
                              absl::Time ready_since) {
  const ResourceType& nodes = TypeOf("", "nodes");
  absl::Status last;
  for (int attempt = 0; attempt < kConflictRetriesMax; ++attempt) {
    auto node = client.Get(nodes, "", config.name);
    if (!node.ok()) return node.status();
    (*node)["status"] = NodeStatus(config, absl::Now(), ready_since);
    auto written = client.Update(nodes, *node, "status");
    if (written.ok()) return absl::OkStatus();
    last = written.status();
    if (!absl::IsAborted(last)) return last;
  }
  return last;
}

absl::Status RegisterNode(ObjectClient& client, const NodeConfig& config, absl::Time ready_since) {
  const ResourceType& nodes = TypeOf("", "nodes");
  auto existing = client.Get(nodes, "", config.name);
  if (absl::IsNotFound(existing.status())) {
    auto created = client.Create(nodes, NodeObject(config));
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
  } else if (!existing.ok()) {
    return existing.status();
  }
  return UpdateNodeStatus(client, config, ready_since);
}

absl::Status RenewLease(ObjectClient& client, const std::string& node_name,
                        const std::string& node_uid) {
  const ResourceType& leases = TypeOf("coordination.k8s.io", "leases");
  absl::Status last;
  for (int attempt = 0; attempt < kConflictRetriesMax; ++attempt) {
    const std::string now = MicroTime(absl::Now());
    auto lease = client.Get(leases, "kube-node-lease", node_name);
    if (absl::IsNotFound(lease.status())) {
      Json object = {{"apiVersion", "coordination.k8s.io/v1"},
                     {"kind", "Lease"},
                     {"metadata", {{"name", node_name}, {"namespace", "kube-node-lease"}}},
                     {"spec",
                      {{"holderIdentity", node_name},
                       {"leaseDurationSeconds", kLeaseDurationSeconds},
                       {"renewTime", now}}}};
      if (!node_uid.empty()) {
        object["metadata"]["ownerReferences"] = Json::array(
            {{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node_name}, {"uid", node_uid}}});
      }
      auto created = client.Create(leases, object);
      if (created.ok()) return absl::OkStatus();
      last = created.status();
      if (!absl::IsAlreadyExists(last)) return last;
      continue;
    }
    if (!lease.ok()) return lease.status();
    (*lease)["spec"]["holderIdentity"] = node_name;
    (*lease)["spec"]["leaseDurationSeconds"] = kLeaseDurationSeconds;
    (*lease)["spec"]["renewTime"] = now;
    auto written = client.Update(leases, *lease);
    if (written.ok()) return absl::OkStatus();
    last = written.status();
    if (!absl::IsAborted(last)) return last;
  }
  return last;
}

}  // namespace ganglion::orchestrator::agent
