// Core v1 types: namespaces, nodes, pods, services, endpoints, configmaps,
// events, persistent volumes and their claims.
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "orchestrator/types/registry.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator {

namespace {

const TableColumn kNameColumn{"Name", "string", "name", "Name must be unique within a namespace.",
                              0};
const TableColumn kAgeColumn{"Age", "string", "",
                             "CreationTimestamp is a timestamp representing the server time "
                             "when this object was created.",
                             0};

std::string Name(const Json& o) {
  const Json* n = Find(o, {"metadata", "name"});
  return n && n->is_string() ? n->get<std::string>() : "";
}

std::string OrNone(std::string s) {
  return s.empty() ? "<none>" : s;
}

std::string JoinStrings(const Json* array, const std::string& sep) {
  std::vector<std::string> parts;
  if (array != nullptr && array->is_array()) {
    for (const Json& v : *array) {
      if (v.is_string()) parts.push_back(v.get<std::string>());
    }
  }
  return absl::StrJoin(parts, sep);
}

std::string SelectorString(const Json* selector) {
  std::vector<std::string> parts;
  if (selector != nullptr && selector->is_object()) {
    for (auto& [k, v] : selector->items()) {
      parts.push_back(absl::StrCat(k, "=", v.is_string() ? v.get<std::string>() : v.dump()));
    }
  }
  return absl::StrJoin(parts, ",");
}

// --- namespaces ---

ResourceType Namespaces() {
  ResourceType t = MakeType("", "v1", "Namespace", "namespaces", "namespace", false, {"ns"}, {});
  t.subresources = {"status"};
  t.set_defaults = [](Json& o) {
    if (!o["spec"].is_object()) o["spec"] = Json::object();
    if (!o["spec"].contains("finalizers")) o["spec"]["finalizers"] = Json::array({"kubernetes"});
    if (!Find(o, {"status", "phase"})) o["status"]["phase"] = "Active";
    // Kubernetes labels every namespace with its own name.
    if (auto* n = Find(o, {"metadata", "name"}); n && n->is_string()) {
      o["metadata"]["labels"]["kubernetes.io/metadata.name"] = *n;
    }
  };
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, false, true, e);
    return e;
  };
  t.columns = {kNameColumn, {"Status", "string", "", "The status of the namespace", 0}, kAgeColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json* phase = Find(o, {"status", "phase"});
    return Json::array(
        {Name(o), phase && phase->is_string() ? *phase : Json("Active"), AgeOf(o, now)});
  };
  t.selectable_fields = {"status.phase"};
  return t;
}

// --- nodes ---

std::string NodeReady(const Json& o) {
  const Json* conditions = Find(o, {"status", "conditions"});
  std::string status = "Unknown";
  if (conditions && conditions->is_array()) {
    for (const Json& c : *conditions) {
      if (StringAt(c, "type") == "Ready") {
        status = StringAt(c, "status") == "True" ? "Ready" : "NotReady";
      }
    }
  } else {
    status = "NotReady";
  }
  if (Find(o, {"spec", "unschedulable"}) && o["spec"]["unschedulable"] == true) {
    status += ",SchedulingDisabled";
  }
  return status;
}

std::string NodeRoles(const Json& o) {
  std::vector<std::string> roles;
  const Json* labels = Find(o, {"metadata", "labels"});
  constexpr std::string_view kRolePrefix = "node-role.kubernetes.io/";
  if (labels && labels->is_object()) {
    for (auto& [k, v] : labels->items()) {
      if (k.rfind(kRolePrefix, 0) == 0 && k.size() > kRolePrefix.size()) {
        roles.push_back(k.substr(kRolePrefix.size()));
      }
    }
  }
  return roles.empty() ? "<none>" : absl::StrJoin(roles, ",");
}

std::string NodeAddress(const Json& o, std::string_view type) {
  const Json* addresses = Find(o, {"status", "addresses"});
  if (addresses && addresses->is_array()) {
    for (const Json& a : *addresses) {
      if (StringAt(a, "type") == type) return StringAt(a, "address");
    }
  }
  return "<none>";
}

ResourceType Nodes() {
  ResourceType t = MakeType("", "v1", "Node", "nodes", "node", false, {"no"}, {});
  t.subresources = {"status"};
  t.set_defaults = [](Json& o) {
    if (!o.contains("spec")) o["spec"] = Json::object();
  };
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, false, false, e);
    return e;
  };
  t.columns = {kNameColumn,
               {"Status", "string", "", "The status of the node", 0},
               {"Roles", "string", "", "The roles of the node", 0},
               kAgeColumn,
               {"Version", "string", "", "Kubelet Version reported by the node.", 0},
               {"Internal-IP", "string", "", "List of internal IPs.", 1},
               {"External-IP", "string", "", "List of external IPs.", 1},
               {"OS-Image", "string", "", "OS Image reported by the node.", 1},
               {"Kernel-Version", "string", "", "Kernel Version reported by the node.", 1},
               {"Container-Runtime", "string", "", "Container Runtime Version.", 1}};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json* info = Find(o, {"status", "nodeInfo"});
    auto info_at = [&](const char* k) {
      return info ? OrNone(StringAt(*info, k)) : std::string("<unknown>");
    };
    return Json::array({Name(o), NodeReady(o), NodeRoles(o), AgeOf(o, now),
                        info ? StringAt(*info, "kubeletVersion") : "", NodeAddress(o, "InternalIP"),
                        NodeAddress(o, "ExternalIP"), info_at("osImage"), info_at("kernelVersion"),
                        info_at("containerRuntimeVersion")});
  };
  t.selectable_fields = {"spec.unschedulable"};
  return t;
}

// --- pods ---

std::string PodStatusReason(const Json& o) {
  std::string reason = StringAt(o.value("status", Json::object()), "phase");
  if (const Json* r = Find(o, {"status", "reason"}); r && r->is_string() && !r->empty()) {
    reason = r->get<std::string>();
  }
  const Json* statuses = Find(o, {"status", "containerStatuses"});
  if (statuses && statuses->is_array()) {
    for (const Json& cs : *statuses) {
      if (const Json* w = Find(cs, {"state", "waiting", "reason"}); w && w->is_string()) {
        reason = w->get<std::string>();
      } else if (const Json* t = Find(cs, {"state", "terminated", "reason"}); t && t->is_string()) {
        reason = t->get<std::string>();
      }
    }
  }
  if (reason.empty()) reason = "Pending";
  if (Find(o, {"metadata", "deletionTimestamp"})) reason = "Terminating";
  return reason;
}

ResourceType Pods() {
  ResourceType t = MakeType("", "v1", "Pod", "pods", "pod", true, {"po"}, {"all"});
  t.subresources = {"status", "binding", "log"};
  t.set_defaults = [](Json& o) {
    DefaultPodSpec(o["spec"]);
    if (!Find(o, {"status", "phase"})) o["status"]["phase"] = "Pending";
    if (!Find(o, {"status", "qosClass"})) o["status"]["qosClass"] = "BestEffort";
  };
  t.validate = [](const Json& o, const Json* old) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    const Json* spec = Find(o, {"spec"});
    ValidatePodSpec(spec ? *spec : Json(), "spec", e);
    if (old != nullptr) {
      // A pod's spec is immutable but for images, deadlines and tolerations.
      Json a = spec ? *spec : Json::object();
      Json b = old->value("spec", Json::object());
      for (Json* s : {&a, &b}) {
        for (const char* list : {"containers", "initContainers"}) {
          if (auto it = s->find(list); it != s->end() && it->is_array()) {
            for (Json& c : *it) c.erase("image");
          }
        }
        s->erase("activeDeadlineSeconds");
        s->erase("tolerations");
        // The scheduler sets the node through the binding subresource.
        if (!b.contains("nodeName")) s->erase("nodeName");
      }
      if (a != b) {
        e.push_back({"FieldValueForbidden", "spec",
                     "Forbidden: pod updates may not change fields other than "
                     "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                     "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                     "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it "
                     "to be set to 1 if it was previously negative)"});
      }
    }
    return e;
  };
  t.columns = {kNameColumn,
               {"Ready", "string", "",
                "The aggregate readiness state of this pod for "
                "accepting traffic.",
                0},
               {"Status", "string", "", "The aggregate status of the containers in this pod.", 0},
               {"Restarts", "string", "",
                "The number of times the containers in this pod "
                "have been restarted.",
                0},
               kAgeColumn,
               {"IP", "string", "", "IP address allocated to the pod.", 1},
               {"Node", "string", "", "Name of the Node this pod is assigned to.", 1},
               {"Nominated Node", "string", "", "Name of the node nominated for this pod.", 1},
               {"Readiness Gates", "string", "", "Pod readiness gates.", 1}};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json* containers = Find(o, {"spec", "containers"});
    const size_t total = containers && containers->is_array() ? containers->size() : 0;
    size_t ready = 0;
    int64_t restarts = 0;
    if (const Json* cs = Find(o, {"status", "containerStatuses"}); cs && cs->is_array()) {
      for (const Json& s : *cs) {
        if (s.value("ready", false)) ++ready;
        restarts += IntAt(s, "restartCount");
      }
    }
    const Json* status = Find(o, {"status"});
    const Json* spec = Find(o, {"spec"});
    return Json::array({Name(o), absl::StrCat(ready, "/", total), PodStatusReason(o), restarts,
                        AgeOf(o, now), OrNone(status ? StringAt(*status, "podIP") : ""),
                        OrNone(spec ? StringAt(*spec, "nodeName") : ""),
                        OrNone(status ? StringAt(*status, "nominatedNodeName") : ""), "<none>"});
  };
  t.selectable_fields = {
      "spec.nodeName",    "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
      "spec.hostNetwork", "status.phase",       "status.podIP",       "status.nominatedNodeName"};
  return t;
}

// --- services ---

ResourceType Services() {
  ResourceType t = MakeType("", "v1", "Service", "services", "service", true, {"svc"}, {"all"});
  t.subresources = {"status"};
  t.set_defaults = [](Json& o) {
    Json& spec = o["spec"];
    if (!spec.contains("type")) spec["type"] = "ClusterIP";
    if (!spec.contains("sessionAffinity")) spec["sessionAffinity"] = "None";
    if (!spec.contains("internalTrafficPolicy")) spec["internalTrafficPolicy"] = "Cluster";
    if (!spec.contains("ipFamilies")) spec["ipFamilies"] = Json::array({"IPv4"});
    if (!spec.contains("ipFamilyPolicy")) spec["ipFamilyPolicy"] = "SingleStack";
    if (auto ports = spec.find("ports"); ports != spec.end() && ports->is_array()) {
      for (Json& p : *ports) {
        if (!p.is_object()) continue;
        if (!p.contains("protocol")) p["protocol"] = "TCP";
        if (!p.contains("targetPort") && p.contains("port")) p["targetPort"] = p["port"];
      }
    }
    if (!o.contains("status")) o["status"] = {{"loadBalancer", Json::object()}};
  };
  t.validate = [](const Json& o, const Json* old) {
    FieldErrors e;
    ValidateObjectMeta(o, true, true, e);
    const Json spec = o.value("spec", Json::object());
    const std::string type = StringAt(spec, "type");
    if (type != "ClusterIP" && type != "NodePort" && type != "LoadBalancer" &&
        type != "ExternalName") {
      NotSupported(e, "spec.type", spec.value("type", Json()),
                   "\"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"");
    }
    const Json ports = spec.value("ports", Json::array());
    if (type != "ExternalName" && (!ports.is_array() || ports.empty()) &&
        StringAt(spec, "clusterIP") != "None") {
      Required(e, "spec.ports");
    }
    if (ports.is_array()) {
      for (size_t i = 0; i < ports.size(); ++i) {
        const int64_t port = IntAt(ports[i], "port", -1);
        if (port < 1 || port > 65535) {
          Invalid(e, absl::StrCat("spec.ports[", i, "].port"), ports[i].value("port", Json()),
                  "must be between 1 and 65535, inclusive");
        }
        if (ports.size() > 1 && StringAt(ports[i], "name").empty()) {
          Required(e, absl::StrCat("spec.ports[", i, "].name"));
        }
      }
    }
    if (old != nullptr) {
      const std::string before = StringAt(old->value("spec", Json::object()), "clusterIP");
      if (!before.empty() && StringAt(spec, "clusterIP") != before) {
        Invalid(e, "spec.clusterIPs[0]", spec.value("clusterIP", Json()),
                "may not change once set");
      }
    }
    return e;
  };
  t.columns = {kNameColumn,
               {"Type", "string", "", "The type of the service.", 0},
               {"Cluster-IP", "string", "", "The cluster IP of the service.", 0},
               {"External-IP", "string", "", "The external IPs of the service.", 0},
               {"Port(s)", "string", "", "The ports of the service.", 0},
               kAgeColumn,
               {"Selector", "string", "", "The label selector of the service.", 1}};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json spec = o.value("spec", Json::object());
    std::vector<std::string> ports;
    for (const Json& p : spec.value("ports", Json::array())) {
      std::string s = absl::StrCat(IntAt(p, "port"));
      if (IntAt(p, "nodePort") != 0) absl::StrAppend(&s, ":", IntAt(p, "nodePort"));
      absl::StrAppend(&s, "/", StringAt(p, "protocol"));
      ports.push_back(s);
    }
    std::string external = JoinStrings(Find(spec, {"externalIPs"}), ",");
    if (external.empty()) {
      external = StringAt(spec, "type") == "ExternalName"   ? StringAt(spec, "externalName")
                 : StringAt(spec, "type") == "LoadBalancer" ? "<pending>"
                                                            : "<none>";
    }
    const Json* selector = Find(spec, {"selector"});
    return Json::array({Name(o), StringAt(spec, "type"), OrNone(StringAt(spec, "clusterIP")),
                        external, ports.empty() ? "<none>" : absl::StrJoin(ports, ","),
                        AgeOf(o, now), OrNone(SelectorString(selector))});
  };
  t.selectable_fields = {"spec.clusterIP", "spec.type"};
  return t;
}

// --- endpoints ---

ResourceType Endpoints() {
  ResourceType t = MakeType("", "v1", "Endpoints", "endpoints", "endpoints", true, {"ep"}, {});
  t.set_defaults = [](Json& o) {
    if (auto subsets = o.find("subsets"); subsets != o.end() && subsets->is_array()) {
      for (Json& s : *subsets) {
        if (auto ports = s.find("ports"); ports != s.end() && ports->is_array()) {
          for (Json& p : *ports) {
            if (p.is_object() && !p.contains("protocol")) p["protocol"] = "TCP";
          }
        }
      }
    }
  };
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    return e;
  };
  t.columns = {
      kNameColumn, {"Endpoints", "string", "", "Endpoints of the service.", 0}, kAgeColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    std::vector<std::string> eps;
    for (const Json& s : o.value("subsets", Json::array())) {
      for (const Json& a : s.value("addresses", Json::array())) {
        const Json ports = s.value("ports", Json::array());
        if (ports.empty()) eps.push_back(StringAt(a, "ip"));
        for (const Json& p : ports) {
          eps.push_back(absl::StrCat(StringAt(a, "ip"), ":", IntAt(p, "port")));
        }
      }
    }
    std::string shown;
    constexpr size_t kShownMax = 3;  // as kubectl does: the first few, then "+ N more..."
    for (size_t i = 0; i < eps.size() && i < kShownMax; ++i) {
      absl::StrAppend(&shown, i ? "," : "", eps[i]);
    }
    if (eps.size() > kShownMax) absl::StrAppend(&shown, " + ", eps.size() - kShownMax, " more...");
    return Json::array({Name(o), OrNone(shown), AgeOf(o, now)});
  };
  return t;
}

// --- configmaps ---

ResourceType ConfigMaps() {
  ResourceType t = MakeType("", "v1", "ConfigMap", "configmaps", "configmap", true, {"cm"}, {});
  t.set_defaults = [](Json&) {};
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    for (const char* field : {"data", "binaryData"}) {
      auto it = o.find(field);
      if (it == o.end() || it->is_null()) continue;
      if (!it->is_object()) {
        Invalid(e, field, *it, "must be a map");
        continue;
      }
      for (auto& [k, v] : it->items()) {
        const bool key_ok =
            !k.empty() && k.size() <= 253 &&
            k.find_first_not_of(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") ==
                std::string::npos;
        if (!key_ok) {
          Invalid(e, absl::StrCat(field, "[", k, "]"), k,
                  "a valid config key must consist of alphanumeric characters, '-', '_' or "
                  "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                  "validation is '[-._a-zA-Z0-9]+')");
        }
        if (!v.is_string()) Invalid(e, absl::StrCat(field, "[", k, "]"), v, "must be a string");
      }
    }
    return e;
  };
  t.columns = {kNameColumn, {"Data", "string", "", "Number of data entries.", 0}, kAgeColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    size_t n = 0;
    for (const char* f : {"data", "binaryData"}) {
      if (o.contains(f) && o[f].is_object()) n += o[f].size();
    }
    return Json::array({Name(o), n, AgeOf(o, now)});
  };
  return t;
}

// --- events ---

ResourceType Events() {
  ResourceType t = MakeType("", "v1", "Event", "events", "event", true, {"ev"}, {});
  t.set_defaults = [](Json& o) {
    if (!o.contains("type")) o["type"] = "Normal";
    if (!o.contains("count")) o["count"] = 1;
  };
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    const Json* involved = Find(o, {"involvedObject"});
    if (involved == nullptr || !involved->is_object()) {
      Required(e, "involvedObject");
    } else {
      const std::string ns = StringAt(*involved, "namespace");
      const Json* meta_ns = Find(o, {"metadata", "namespace"});
      if (!ns.empty() && meta_ns && meta_ns->is_string() && *meta_ns != ns) {
        Invalid(e, "involvedObject.namespace", ns, "does not match event.namespace");
      }
    }
    const std::string type = StringAt(o, "type");
    if (type != "Normal" && type != "Warning") {
      NotSupported(e, "type", o.value("type", Json()), "\"Normal\", \"Warning\"");
    }
    return e;
  };
  t.columns = {{"Last Seen", "string", "", "Time of the last occurrence.", 0},
               {"Type", "string", "", "Type of this event.", 0},
               {"Reason", "string", "", "Why the action was taken.", 0},
               {"Object", "string", "", "The object this event is about.", 0},
               {"Message", "string", "", "A human-readable description.", 0},
               {"Name", "string", "name", "Name of the event.", 1}};
  t.row_cells = [](const Json& o, absl::Time now) {
    std::string last_seen = "<unknown>";
    for (const char* f : {"lastTimestamp", "eventTime", "firstTimestamp"}) {
      const std::string ts = StringAt(o, f);
      absl::Time at;
      std::string err;
      if (!ts.empty() && absl::ParseTime(absl::RFC3339_full, ts, &at, &err)) {
        last_seen = HumanDuration(now - at);
        break;
      }
    }
    if (last_seen == "<unknown>") last_seen = AgeOf(o, now);
    const Json involved = o.value("involvedObject", Json::object());
    std::string kind = StringAt(involved, "kind");
    for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return Json::array({last_seen, StringAt(o, "type"), StringAt(o, "reason"),
                        absl::StrCat(kind, "/", StringAt(involved, "name")), StringAt(o, "message"),
                        Name(o)});
  };
  t.selectable_fields = {"involvedObject.kind",
                         "involvedObject.namespace",
                         "involvedObject.name",
                         "involvedObject.uid",
                         "involvedObject.apiVersion",
                         "involvedObject.resourceVersion",
                         "involvedObject.fieldPath",
                         "reason",
                         "reportingComponent",
                         "source",
                         "type"};
  return t;
}

// --- persistent volumes and claims ---

std::string AccessModes(const Json* modes) {
  std::vector<std::string> out;
  if (modes && modes->is_array()) {
    for (const Json& m : *modes) {
      const std::string s = m.is_string() ? m.get<std::string>() : "";
      if (s == "ReadWriteOnce") out.push_back("RWO");
      if (s == "ReadOnlyMany") out.push_back("ROX");
      if (s == "ReadWriteMany") out.push_back("RWX");
      if (s == "ReadWriteOncePod") out.push_back("RWOP");
    }
  }
  return absl::StrJoin(out, ",");
}

ResourceType PersistentVolumes() {
  ResourceType t = MakeType("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume",
                            false, {"pv"}, {});
  t.subresources = {"status"};
  t.set_defaults = [](Json& o) {
    Json& spec = o["spec"];
    if (!spec.contains("persistentVolumeReclaimPolicy"))
      spec["persistentVolumeReclaimPolicy"] = "Retain";
    if (!spec.contains("volumeMode")) spec["volumeMode"] = "Filesystem";
    if (!Find(o, {"status", "phase"})) o["status"]["phase"] = "Pending";
  };
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, false, false, e);
    const Json spec = o.value("spec", Json::object());
    if (!Find(spec, {"capacity", "storage"})) Required(e, "spec.capacity");
    if (!spec.contains("accessModes") || spec["accessModes"].empty()) {
      Required(e, "spec.accessModes");
    }
    return e;
  };
  t.columns = {kNameColumn,
               {"Capacity", "string", "", "Capacity of the volume.", 0},
               {"Access Modes", "string", "", "Access modes.", 0},
               {"Reclaim Policy", "string", "", "Reclaim policy.", 0},
               {"Status", "string", "", "Phase of the volume.", 0},
               {"Claim", "string", "", "The claim bound to it.", 0},
               {"StorageClass", "string", "", "Storage class.", 0},
               {"VolumeAttributesClass", "string", "", "Volume attributes class.", 0},
               {"Reason", "string", "", "Reason for the phase.", 0},
               kAgeColumn,
               {"VolumeMode", "string", "", "Volume mode.", 1}};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json spec = o.value("spec", Json::object());
    const Json status = o.value("status", Json::object());
    const Json* storage = Find(spec, {"capacity", "storage"});
    std::string claim;
    if (const Json* ref = Find(spec, {"claimRef"}); ref && ref->is_object()) {
      claim = absl::StrCat(StringAt(*ref, "namespace"), "/", StringAt(*ref, "name"));
    }
    return Json::array({Name(o), storage && storage->is_string() ? *storage : Json(""),
                        AccessModes(Find(spec, {"accessModes"})),
                        StringAt(spec, "persistentVolumeReclaimPolicy"), StringAt(status, "phase"),
                        claim, StringAt(spec, "storageClassName"),
                        OrNone(StringAt(spec, "volumeAttributesClassName")),
                        StringAt(status, "reason"), AgeOf(o, now), StringAt(spec, "volumeMode")});
  };
  return t;
}

ResourceType PersistentVolumeClaims() {
  ResourceType t = MakeType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims",
                            "persistentvolumeclaim", true, {"pvc"}, {});
  t.subresources = {"status"};
  t.set_defaults = [](Json& o) {
    Json& spec = o["spec"];
    if (!spec.contains("volumeMode")) spec["volumeMode"] = "Filesystem";
    if (!Find(o, {"status", "phase"})) o["status"]["phase"] = "Pending";
  };
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    const Json spec = o.value("spec", Json::object());
    if (!spec.contains("accessModes") || spec["accessModes"].empty()) {
      Required(e, "spec.accessModes");
    }
    if (!Find(spec, {"resources", "requests", "storage"})) {
      Required(e, "spec.resources[storage]");
    }
    return e;
  };
  t.columns = {kNameColumn,
               {"Status", "string", "", "Phase of the claim.", 0},
               {"Volume", "string", "", "The volume bound to it.", 0},
               {"Capacity", "string", "", "Capacity.", 0},
               {"Access Modes", "string", "", "Access modes.", 0},
               {"StorageClass", "string", "", "Storage class.", 0},
               {"VolumeAttributesClass", "string", "", "Volume attributes class.", 0},
               kAgeColumn,
               {"VolumeMode", "string", "", "Volume mode.", 1}};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json spec = o.value("spec", Json::object());
    const Json status = o.value("status", Json::object());
    const Json* storage = Find(status, {"capacity", "storage"});
    return Json::array({Name(o), StringAt(status, "phase"), StringAt(spec, "volumeName"),
                        storage && storage->is_string() ? *storage : Json(""),
                        AccessModes(Find(status, {"accessModes"})),
                        StringAt(spec, "storageClassName"),
                        OrNone(StringAt(spec, "volumeAttributesClassName")), AgeOf(o, now),
                        StringAt(spec, "volumeMode")});
  };
  return t;
}

}  // namespace

std::vector<ResourceType> CoreTypes() {
  return {ConfigMaps(),        Endpoints(), Events(),
          Namespaces(),        Nodes(),     PersistentVolumeClaims(),
          PersistentVolumes(), Pods(),      Services()};
}

}  // namespace ganglion::orchestrator
