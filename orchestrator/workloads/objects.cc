#include "orchestrator/workloads/objects.h"

#include <algorithm>

#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator::workloads {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::optional<absl::Time> ParseRfc3339(const Json* value) {
  if (value == nullptr || !value->is_string()) return std::nullopt;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, value->get<std::string>(), &t, &err)) {
    return std::nullopt;
  }
  return t;
}

namespace {

std::string MetaString(const Json& o, const char* field) {
  const Json* v = Find(o, {"metadata", field});
  return v && v->is_string() ? v->get<std::string>() : "";
}

}  // namespace

std::string NameOf(const Json& o) {
  return MetaString(o, "name");
}
std::string NamespaceOf(const Json& o) {
  return MetaString(o, "namespace");
}
std::string UidOf(const Json& o) {
  return MetaString(o, "uid");
}
std::string ResourceVersionOf(const Json& o) {
  return MetaString(o, "resourceVersion");
}

int64_t GenerationOf(const Json& o) {
  const Json* meta = Find(o, {"metadata"});
  return meta ? IntAt(*meta, "generation", 0) : 0;
}

bool IsTerminating(const Json& o) {
  return Find(o, {"metadata", "deletionTimestamp"}) != nullptr;
}

std::string AnnotationOf(const Json& o, const std::string& key) {
  const Json* annotations = Find(o, {"metadata", "annotations"});
  if (annotations == nullptr || !annotations->is_object()) return "";
  return StringAt(*annotations, key);
}

int64_t SpecReplicas(const Json& workload) {
  const Json* spec = Find(workload, {"spec"});
  return spec ? IntAt(*spec, "replicas", 1) : 1;
}

int64_t StatusInt(const Json& o, const char* field) {
  const Json* status = Find(o, {"status"});
  return status ? IntAt(*status, field, 0) : 0;
}

std::optional<absl::Time> CreatedAt(const Json& o) {
  return ParseRfc3339(Find(o, {"metadata", "creationTimestamp"}));
}

namespace {

std::string Phase(const Json& pod) {
  const Json* status = Find(pod, {"status"});
  return status ? StringAt(*status, "phase") : "";
}

const Json* ReadyCondition(const Json& pod) {
  const Json* conditions = Find(pod, {"status", "conditions"});
  if (conditions == nullptr || !conditions->is_array()) return nullptr;
  for (const Json& c : *conditions) {
    if (c.is_object() && StringAt(c, "type") == "Ready") return &c;
  }
  return nullptr;
}

int PhaseOrdinal(const Json& pod) {
  const std::string phase = Phase(pod);
  if (phase == "Pending" || phase.empty()) return 0;
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 3;
}

bool Assigned(const Json& pod) {
  const Json* spec = Find(pod, {"spec"});
  return spec && !StringAt(*spec, "nodeName").empty();
}

}  // namespace

bool IsPodActive(const Json& pod) {
  const std::string phase = Phase(pod);
  return phase != "Succeeded" && phase != "Failed" && !IsTerminating(pod);
}

bool IsPodReady(const Json& pod) {
  const Json* c = ReadyCondition(pod);
  return c != nullptr && StringAt(*c, "status") == "True";
}

std::optional<absl::Time> PodReadySince(const Json& pod) {
  const Json* c = ReadyCondition(pod);
  if (c == nullptr || StringAt(*c, "status") != "True") return std::nullopt;
  auto t = ParseRfc3339(Find(*c, {"lastTransitionTime"}));
  // A ready pod without a transition time has been ready "forever".
  return t ? *t : absl::InfinitePast();
}

bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds, absl::Time now) {
  auto since = PodReadySince(pod);
  if (!since) return false;
  if (min_ready_seconds <= 0) return true;
  return *since + absl::Seconds(min_ready_seconds) <= now;
}

absl::Duration UntilAvailable(const Json& pod, int64_t min_ready_seconds, absl::Time now) {
  auto since = PodReadySince(pod);
  if (!since || min_ready_seconds <= 0 || *since == absl::InfinitePast()) {
    return absl::ZeroDuration();
  }
  return std::max(absl::ZeroDuration(), *since + absl::Seconds(min_ready_seconds) - now);
}

int64_t PodRestarts(const Json& pod) {
  int64_t most = 0;
  const Json* statuses = Find(pod, {"status", "containerStatuses"});
  if (statuses == nullptr || !statuses->is_array()) return 0;
  for (const Json& s : *statuses) most = std::max(most, IntAt(s, "restartCount", 0));
  return most;
}

bool DeletesBefore(const Json& a, const Json& b) {
  if (Assigned(a) != Assigned(b)) return !Assigned(a);
  if (PhaseOrdinal(a) != PhaseOrdinal(b)) return PhaseOrdinal(a) < PhaseOrdinal(b);
  const bool ready_a = IsPodReady(a), ready_b = IsPodReady(b);
  if (ready_a != ready_b) return !ready_a;
  if (ready_a) {
    const absl::Time since_a = *PodReadySince(a), since_b = *PodReadySince(b);
    if (since_a != since_b) return since_a > since_b;
  }
  if (PodRestarts(a) != PodRestarts(b)) return PodRestarts(a) > PodRestarts(b);
  const absl::Time created_a = CreatedAt(a).value_or(absl::InfinitePast());
  const absl::Time created_b = CreatedAt(b).value_or(absl::InfinitePast());
  if (created_a != created_b) return created_a > created_b;
  return NameOf(a) < NameOf(b);
}

const Json* ControllerRef(const Json& o) {
  const Json* refs = Find(o, {"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return nullptr;
  for (const Json& r : *refs) {
    if (r.is_object() && r.value("controller", false) == true) return &r;
  }
  return nullptr;
}

std::string ControllerUid(const Json& o) {
  const Json* ref = ControllerRef(o);
  return ref ? StringAt(*ref, "uid") : "";
}

Json ControllerRefTo(const Json& owner) {
  return {{"apiVersion", owner.value("apiVersion", "")},
          {"kind", owner.value("kind", "")},
          {"name", NameOf(owner)},
          {"uid", UidOf(owner)},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

std::vector<std::string> ControllerUidValues(const Json& o) {
  std::string uid = ControllerUid(o);
  if (uid.empty()) return {};
  return {std::move(uid)};
}

}  // namespace ganglion::orchestrator::workloads
