#include "orchestrator/scheduler/objects.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "orchestrator/scheduler/quantity.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator::scheduler {

void Resources::Add(const Resources& other) {
  cpu_milli += other.cpu_milli;
  memory_bytes += other.memory_bytes;
  pods += other.pods;
  for (const auto& [name, value] : other.scalar) scalar[name] += value;
}

void Resources::Subtract(const Resources& other) {
  cpu_milli -= other.cpu_milli;
  memory_bytes -= other.memory_bytes;
  pods -= other.pods;
  for (const auto& [name, value] : other.scalar) {
    auto it = scalar.find(name);
    if (it == scalar.end()) continue;
    it->second -= value;
    if (it->second == 0) scalar.erase(it);
  }
}

void Resources::Max(const Resources& other) {
  cpu_milli = std::max(cpu_milli, other.cpu_milli);
  memory_bytes = std::max(memory_bytes, other.memory_bytes);
  pods = std::max(pods, other.pods);
  for (const auto& [name, value] : other.scalar) {
    int64_t& mine = scalar[name];
    mine = std::max(mine, value);
  }
}

namespace {

// A quantity may arrive as a JSON number when a manifest wrote `cpu: 1`.
absl::StatusOr<std::string> QuantityText(const std::string& name, const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) return value.dump();
  return absl::InvalidArgumentError(
      absl::StrCat("resource \"", name, "\": quantity must be a string, got ", value.dump()));
}

absl::Status SetResource(Resources& r, const std::string& name, const Json& value) {
  auto text = QuantityText(name, value);
  if (!text.ok()) return text.status();
  if (name == "cpu") {
    auto v = ParseQuantityMilli(*text);
    if (!v.ok()) return v.status();
    r.cpu_milli = *v;
    return absl::OkStatus();
  }
  auto v = ParseQuantity(*text);
  if (!v.ok()) return v.status();
  if (name == "memory") {
    r.memory_bytes = *v;
  } else if (name == "pods") {
    r.pods = *v;
  } else if (*v != 0) {
    r.scalar[name] = *v;
  } else {
    r.scalar.erase(name);
  }
  return absl::OkStatus();
}

constexpr int64_t kDefaultCpuMilli = 100;                   // for scoring only
constexpr int64_t kDefaultMemoryBytes = 200 * 1024 * 1024;  // for scoring only

struct ContainerRequests {
  Resources requests;
  int64_t nonzero_cpu_milli = 0;
  int64_t nonzero_memory_bytes = 0;

  void Add(const ContainerRequests& o) {
    requests.Add(o.requests);
    nonzero_cpu_milli += o.nonzero_cpu_milli;
    nonzero_memory_bytes += o.nonzero_memory_bytes;
  }
  void Max(const ContainerRequests& o) {
    requests.Max(o.requests);
    nonzero_cpu_milli = std::max(nonzero_cpu_milli, o.nonzero_cpu_milli);
    nonzero_memory_bytes = std::max(nonzero_memory_bytes, o.nonzero_memory_bytes);
  }
};

// A container's requests; a resource with a limit but no request requests
// its limit (as the API defaults it).
absl::StatusOr<ContainerRequests> RequestsOf(const Json& container, const std::string& where) {
  ContainerRequests out;
  const Json* requests = Find(container, {"resources", "requests"});
  const Json* limits = Find(container, {"resources", "limits"});
  bool has_cpu = false, has_memory = false;
  for (const Json* list : {limits, requests}) {  // requests last: they win
    if (list == nullptr || !list->is_object()) continue;
    for (const auto& [name, value] : list->items()) {
      absl::Status st = SetResource(out.requests, name, value);
      if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", st.message()));
      has_cpu |= name == "cpu";
      has_memory |= name == "memory";
    }
  }
  out.nonzero_cpu_milli = has_cpu ? out.requests.cpu_milli : kDefaultCpuMilli;
  out.nonzero_memory_bytes = has_memory ? out.requests.memory_bytes : kDefaultMemoryBytes;
  return out;
}

absl::StatusOr<Requirement> ParseRequirement(const Json& e, const std::string& where) {
  Requirement r;
  r.key = StringAt(e, "key");
  const std::string op = StringAt(e, "operator");
  static const std::map<std::string, Requirement::Op> kOps = {
      {"In", Requirement::Op::kIn},         {"NotIn", Requirement::Op::kNotIn},
      {"Exists", Requirement::Op::kExists}, {"DoesNotExist", Requirement::Op::kDoesNotExist},
      {"Gt", Requirement::Op::kGt},         {"Lt", Requirement::Op::kLt}};
  auto it = kOps.find(op);
  if (it == kOps.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".operator: unknown operator \"", op,
                                                   "\" (want In, NotIn, Exists, DoesNotExist, "
                                                   "Gt or Lt)"));
  }
  r.op = it->second;
  if (const Json* values = Find(e, {"values"}); values && values->is_array()) {
    for (const Json& v : *values) {
      if (v.is_string()) r.values.push_back(v.get<std::string>());
    }
  }
  return r;
}

absl::StatusOr<SelectorTerm> ParseTerm(const Json& json, const std::string& where) {
  SelectorTerm term;
  for (const char* list : {"matchExpressions", "matchFields"}) {
    const Json* es = Find(json, {list});
    if (!es || !es->is_array()) continue;
    for (size_t e = 0; e < es->size(); ++e) {
      auto r = ParseRequirement((*es)[e], absl::StrCat(where, ".", list, "[", e, "]"));
      if (!r.ok()) return r.status();
      (std::string(list) == "matchFields" ? term.fields : term.labels).push_back(*std::move(r));
    }
  }
  return term;
}

bool IsSidecar(const Json& init_container) {
  return StringAt(init_container, "restartPolicy") == "Always";
}

}  // namespace

absl::StatusOr<Resources> ParseResourceList(const Json& list) {
  Resources r;
  if (!list.is_object()) return r;
  for (const auto& [name, value] : list.items()) {
    absl::Status st = SetResource(r, name, value);
    if (!st.ok()) return st;
  }
  return r;
}

bool Tolerates(const Toleration& t, const Taint& taint) {
  if (!t.effect.empty() && t.effect != taint.effect) return false;
  if (!t.key.empty() && t.key != taint.key) return false;  // an empty key: any key
  return t.exists || t.value == taint.value;
}

bool ToleratesAny(const std::vector<Toleration>& tolerations, const Taint& taint) {
  for (const Toleration& t : tolerations) {
    if (Tolerates(t, taint)) return true;
  }
  return false;
}

bool PortsConflict(const HostPort& a, const HostPort& b) {
  if (a.port != b.port || a.protocol != b.protocol) return false;
  return a.ip == "0.0.0.0" || b.ip == "0.0.0.0" || a.ip == b.ip;
}

absl::StatusOr<PodInfo> ParsePod(const Json& pod) {
  PodInfo p;
  const Json empty = Json::object();
  const Json& meta = pod.contains("metadata") ? pod["metadata"] : empty;
  const Json& spec = pod.contains("spec") ? pod["spec"] : empty;
  p.namespace_name = StringAt(meta, "namespace");
  p.name = StringAt(meta, "name");
  p.key = p.namespace_name.empty() ? p.name : absl::StrCat(p.namespace_name, "/", p.name);
  p.usage.uid = StringAt(meta, "uid");
  if (const Json* owners = Find(meta, {"ownerReferences"}); owners && owners->is_array()) {
    for (const Json& o : *owners) {
      if (o.value("controller", false)) p.usage.owner_uid = StringAt(o, "uid");
    }
  }

  // Effective requests: every container and sidecar runs at once; each
  // plain init container runs alone beside the sidecars started before it.
  ContainerRequests running, init_peak, sidecars;
  const bool host_network = spec.value("hostNetwork", false);
  if (const Json* cs = Find(spec, {"containers"}); cs && cs->is_array()) {
    for (size_t i = 0; i < cs->size(); ++i) {
      const Json& c = (*cs)[i];
      auto r = RequestsOf(c, absl::StrCat("spec.containers[", i, "].resources"));
      if (!r.ok()) return r.status();
      running.Add(*r);
      if (const Json* ports = Find(c, {"ports"}); ports && ports->is_array()) {
        for (const Json& port : *ports) {
          int64_t host_port = IntAt(port, "hostPort");
          if (host_port <= 0 && host_network) host_port = IntAt(port, "containerPort");
          if (host_port <= 0) continue;
          HostPort hp{StringAt(port, "hostIP"), StringAt(port, "protocol"),
                      static_cast<int>(host_port)};
          if (hp.ip.empty() || hp.ip == "::") hp.ip = "0.0.0.0";
          if (hp.protocol.empty()) hp.protocol = "TCP";
          p.usage.host_ports.push_back(std::move(hp));
        }
      }
    }
  }
  if (const Json* inits = Find(spec, {"initContainers"}); inits && inits->is_array()) {
    for (size_t i = 0; i < inits->size(); ++i) {
      const Json& c = (*inits)[i];
      auto r = RequestsOf(c, absl::StrCat("spec.initContainers[", i, "].resources"));
      if (!r.ok()) return r.status();
      if (IsSidecar(c)) {
        running.Add(*r);
        sidecars.Add(*r);
        init_peak.Max(sidecars);
      } else {
        ContainerRequests alone = sidecars;
        alone.Add(*r);
        init_peak.Max(alone);
      }
    }
  }
  running.Max(init_peak);
  if (const Json* overhead = Find(spec, {"overhead"}); overhead && overhead->is_object()) {
    auto o = ParseResourceList(*overhead);
    if (!o.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("spec.overhead: ", o.status().message()));
    }
    running.requests.Add(*o);
    running.nonzero_cpu_milli += o->cpu_milli;
    running.nonzero_memory_bytes += o->memory_bytes;
  }
  p.usage.requests = std::move(running.requests);
  p.usage.requests.pods = 1;
  p.usage.nonzero_cpu_milli = running.nonzero_cpu_milli;
  p.usage.nonzero_memory_bytes = running.nonzero_memory_bytes;

  if (const Json* sel = Find(spec, {"nodeSelector"}); sel && sel->is_object()) {
    for (const auto& [k, v] : sel->items()) {
      p.node_selector[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  }
  const std::string affinity_at = "spec.affinity.nodeAffinity.";
  const Json* terms =
      Find(spec, {"affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                  "nodeSelectorTerms"});
  if (terms != nullptr) {
    p.has_required_affinity = true;
    if (terms->is_array()) {
      for (size_t t = 0; t < terms->size(); ++t) {
        auto term =
            ParseTerm((*terms)[t], absl::StrCat(affinity_at,
                                                "requiredDuringSchedulingIgnoredDuringExecution."
                                                "nodeSelectorTerms[",
                                                t, "]"));
        if (!term.ok()) return term.status();
        p.required_terms.push_back(*std::move(term));
      }
    }
  }
  const Json* preferred =
      Find(spec, {"affinity", "nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution"});
  if (preferred != nullptr && preferred->is_array()) {
    for (size_t t = 0; t < preferred->size(); ++t) {
      const Json& entry = (*preferred)[t];
      const int64_t weight = IntAt(entry, "weight");
      if (weight <= 0) continue;
      auto term =
          ParseTerm(entry.value("preference", Json::object()),
                    absl::StrCat(affinity_at, "preferredDuringSchedulingIgnoredDuringExecution[", t,
                                 "].preference"));
      if (!term.ok()) return term.status();
      p.preferred_terms.push_back({weight, *std::move(term)});
    }
  }
  if (const Json* ts = Find(spec, {"tolerations"}); ts && ts->is_array()) {
    for (const Json& t : *ts) {
      p.tolerations.push_back({StringAt(t, "key"), StringAt(t, "value"), StringAt(t, "effect"),
                               StringAt(t, "operator") == "Exists"});
    }
  }
  return p;
}

absl::StatusOr<NodeInfo> ParseNode(const Json& node) {
  NodeInfo n;
  const Json empty = Json::object();
  const Json& meta = node.contains("metadata") ? node["metadata"] : empty;
  n.name = StringAt(meta, "name");
  if (const Json* labels = Find(meta, {"labels"}); labels && labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      n.labels[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  }
  if (const Json* u = Find(node, {"spec", "unschedulable"}); u && u->is_boolean()) {
    n.unschedulable = u->get<bool>();
  }
  if (const Json* taints = Find(node, {"spec", "taints"}); taints && taints->is_array()) {
    for (const Json& t : *taints) {
      n.taints.push_back({StringAt(t, "key"), StringAt(t, "value"), StringAt(t, "effect")});
    }
  }
  if (const Json* cs = Find(node, {"status", "conditions"}); cs && cs->is_array()) {
    for (const Json& c : *cs) {
      if (StringAt(c, "type") == "Ready") n.ready = StringAt(c, "status") == "True";
    }
  }
  const Json* allocatable = Find(node, {"status", "allocatable"});
  if (allocatable == nullptr) allocatable = Find(node, {"status", "capacity"});
  if (allocatable != nullptr) {
    auto r = ParseResourceList(*allocatable);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node ", n.name, " status.allocatable: ", r.status().message()));
    }
    n.allocatable = *std::move(r);
  }
  return n;
}

bool IsTerminated(const Json& pod) {
  const Json* phase = Find(pod, {"status", "phase"});
  if (!phase || !phase->is_string()) return false;
  return *phase == "Succeeded" || *phase == "Failed";
}

bool WantsScheduling(const Json& pod) {
  if (const Json* node = Find(pod, {"spec", "nodeName"});
      node && node->is_string() && !node->get<std::string>().empty()) {
    return false;
  }
  if (const Json* d = Find(pod, {"metadata", "deletionTimestamp"}); d && !d->is_null()) {
    return false;
  }
  if (IsTerminated(pod)) return false;
  const Json* scheduler = Find(pod, {"spec", "schedulerName"});
  if (!scheduler || scheduler->is_null()) return true;
  return scheduler->is_string() &&
         (scheduler->get<std::string>().empty() || *scheduler == "default-scheduler");
}

}  // namespace ganglion::orchestrator::scheduler
