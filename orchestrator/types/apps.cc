// apps/v1 types: deployments, replica sets, stateful sets, daemon sets and
// controller revisions.
#include <algorithm>
#include <cctype>
#include <string>

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
const TableColumn kContainersColumn{"Containers", "string", "",
                                    "Names of each container in the template.", 1};
const TableColumn kImagesColumn{"Images", "string", "",
                                "Images referenced by each container "
                                "in the template.",
                                1};
const TableColumn kSelectorColumn{"Selector", "string", "", "Label selector for pods.", 1};

std::string Name(const Json& o) {
  const Json* n = Find(o, {"metadata", "name"});
  return n && n->is_string() ? n->get<std::string>() : "";
}

// "app=web,tier in (a,b)": a label selector as kubectl prints it.
std::string LabelSelectorString(const Json* selector) {
  std::vector<std::string> parts;
  if (selector == nullptr || !selector->is_object()) return "<none>";
  if (const Json* ml = Find(*selector, {"matchLabels"}); ml && ml->is_object()) {
    for (auto& [k, v] : ml->items()) {
      parts.push_back(absl::StrCat(k, "=", v.is_string() ? v.get<std::string>() : v.dump()));
    }
  }
  if (const Json* me = Find(*selector, {"matchExpressions"}); me && me->is_array()) {
    for (const Json& r : *me) {
      const std::string op = StringAt(r, "operator");
      std::vector<std::string> values;
      for (const Json& v : r.value("values", Json::array())) {
        if (v.is_string()) values.push_back(v.get<std::string>());
      }
      const std::string key = StringAt(r, "key");
      if (op == "In") parts.push_back(absl::StrCat(key, " in (", absl::StrJoin(values, ","), ")"));
      if (op == "NotIn") {
        parts.push_back(absl::StrCat(key, " notin (", absl::StrJoin(values, ","), ")"));
      }
      if (op == "Exists") parts.push_back(key);
      if (op == "DoesNotExist") parts.push_back("!" + key);
    }
  }
  return parts.empty() ? "<none>" : absl::StrJoin(parts, ",");
}

std::pair<std::string, std::string> ContainersAndImages(const Json& o) {
  std::vector<std::string> names, images;
  if (const Json* cs = Find(o, {"spec", "template", "spec", "containers"}); cs && cs->is_array()) {
    for (const Json& c : *cs) {
      names.push_back(StringAt(c, "name"));
      images.push_back(StringAt(c, "image"));
    }
  }
  return {absl::StrJoin(names, ","), absl::StrJoin(images, ",")};
}

int64_t StatusInt(const Json& o, const char* field) {
  const Json* s = Find(o, {"status"});
  return s ? IntAt(*s, field) : 0;
}

int64_t SpecReplicas(const Json& o) {
  const Json* s = Find(o, {"spec"});
  return s ? IntAt(*s, "replicas", 1) : 1;
}

void DefaultTemplate(Json& o) {
  DefaultPodSpec(o["spec"]["template"]["spec"]);
}

FieldErrors ValidateWorkload(const Json& o, const Json* old) {
  FieldErrors e;
  ValidateObjectMeta(o, true, false, e);
  const Json* spec = Find(o, {"spec"});
  if (spec == nullptr || !spec->is_object()) {
    Required(e, "spec");
    return e;
  }
  if (spec->contains("replicas") && IntAt(*spec, "replicas", -1) < 0) {
    Invalid(e, "spec.replicas", (*spec)["replicas"], "must be greater than or equal to 0");
  }
  ValidateSelectorAndTemplate(*spec, e);
  if (old != nullptr) {
    const Json* before = Find(*old, {"spec", "selector"});
    const Json* after = Find(*spec, {"selector"});
    if (before && after && *before != *after) {
      Invalid(e, "spec.selector", *after, "field is immutable");
    }
  }
  return e;
}

// maxSurge / maxUnavailable: a non-negative integer or "<n>%". Returns
// whether the value is zero (0 or "0%"); malformed values add an error.
bool ValidateIntOrPercent(const Json& v, const std::string& field, bool at_most_100,
                          FieldErrors& e) {
  if (v.is_number_integer()) {
    if (v.get<int64_t>() < 0) Invalid(e, field, v, "must be greater than or equal to 0");
    return v.get<int64_t>() == 0;
  }
  const std::string s = v.is_string() ? v.get<std::string>() : "";
  bool digits = s.size() >= 2 && s.back() == '%';
  for (size_t i = 0; digits && i + 1 < s.size(); ++i) digits = std::isdigit(s[i]) != 0;
  if (!digits) {
    Invalid(e, field, v,
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. "
            "'1%',  or '93%', regex used for validation is '[0-9]+%')");
    return false;
  }
  const int64_t percent = std::stoll(s.substr(0, std::min<size_t>(s.size() - 1, 9)));
  if (at_most_100 && percent > 100) Invalid(e, field, v, "must not be greater than 100%");
  return percent == 0;
}

void ValidateDeploymentSpec(const Json& o, FieldErrors& e) {
  const Json* spec = Find(o, {"spec"});
  if (spec == nullptr || !spec->is_object()) return;
  const Json* type = Find(*spec, {"strategy", "type"});
  const Json* ru = Find(*spec, {"strategy", "rollingUpdate"});
  if (type && *type == "RollingUpdate" && ru && ru->is_object()) {
    const std::string path = "spec.strategy.rollingUpdate.";
    const Json surge = ru->value("maxSurge", Json(0));
    const Json unavailable = ru->value("maxUnavailable", Json(0));
    const bool surge_zero = ValidateIntOrPercent(surge, path + "maxSurge", false, e);
    const bool unavailable_zero =
        ValidateIntOrPercent(unavailable, path + "maxUnavailable", true, e);
    if (surge_zero && unavailable_zero) {
      Invalid(e, path + "maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0");
    }
  }
  const int64_t min_ready = IntAt(*spec, "minReadySeconds", 0);
  if (min_ready < 0) {
    Invalid(e, "spec.minReadySeconds", (*spec)["minReadySeconds"],
            "must be greater than or equal to 0");
  }
  if (spec->contains("progressDeadlineSeconds")) {
    const int64_t deadline = IntAt(*spec, "progressDeadlineSeconds", 0);
    if (deadline <= min_ready) {
      Invalid(e, "spec.progressDeadlineSeconds", (*spec)["progressDeadlineSeconds"],
              "must be greater than minReadySeconds");
    }
  }
  if (spec->contains("revisionHistoryLimit") && IntAt(*spec, "revisionHistoryLimit", -1) < 0) {
    Invalid(e, "spec.revisionHistoryLimit", (*spec)["revisionHistoryLimit"],
            "must be greater than or equal to 0");
  }
}

ResourceType Deployments() {
  ResourceType t =
      MakeType("apps", "v1", "Deployment", "deployments", "deployment", true, {"deploy"}, {"all"});
  t.subresources = {"status", "scale"};
  t.set_defaults = [](Json& o) {
    Json& spec = o["spec"];
    if (!spec.contains("replicas")) spec["replicas"] = 1;
    // kubectl sends "strategy": {} (Go's JSON keeps empty structs): an empty type defaults too.
    if (!spec.contains("strategy") || !spec["strategy"].is_object())
      spec["strategy"] = Json::object();
    if (StringAt(spec["strategy"], "type").empty()) spec["strategy"]["type"] = "RollingUpdate";
    if (StringAt(spec["strategy"], "type") == "RollingUpdate") {
      Json& ru = spec["strategy"]["rollingUpdate"];
      if (!ru.contains("maxUnavailable")) ru["maxUnavailable"] = "25%";
      if (!ru.contains("maxSurge")) ru["maxSurge"] = "25%";
    }
    if (!spec.contains("revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
    if (!spec.contains("progressDeadlineSeconds")) spec["progressDeadlineSeconds"] = 600;
    DefaultTemplate(o);
  };
  t.validate = [](const Json& o, const Json* old) {
    FieldErrors e = ValidateWorkload(o, old);
    const Json* strategy = Find(o, {"spec", "strategy", "type"});
    if (strategy && *strategy != "RollingUpdate" && *strategy != "Recreate") {
      NotSupported(e, "spec.strategy.type", *strategy, "\"Recreate\", \"RollingUpdate\"");
    }
    ValidateDeploymentSpec(o, e);
    return e;
  };
  t.columns = {kNameColumn,
               {"Ready", "string", "", "Number of the pod with ready state", 0},
               {"Up-to-date", "string", "",
                "Total number of non-terminated pods targeted by "
                "this deployment that have the desired template "
                "spec.",
                0},
               {"Available", "string", "",
                "Total number of available pods (ready for at "
                "least minReadySeconds) targeted by this "
                "deployment.",
                0},
               kAgeColumn,
               kContainersColumn,
               kImagesColumn,
               kSelectorColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    auto [containers, images] = ContainersAndImages(o);
    return Json::array({Name(o), absl::StrCat(StatusInt(o, "readyReplicas"), "/", SpecReplicas(o)),
                        StatusInt(o, "updatedReplicas"), StatusInt(o, "availableReplicas"),
                        AgeOf(o, now), containers, images,
                        LabelSelectorString(Find(o, {"spec", "selector"}))});
  };
  return t;
}

ResourceType ReplicaSets() {
  ResourceType t =
      MakeType("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, {"rs"}, {"all"});
  t.subresources = {"status", "scale"};
  t.set_defaults = [](Json& o) {
    if (!o["spec"].contains("replicas")) o["spec"]["replicas"] = 1;
    DefaultTemplate(o);
  };
  t.validate = ValidateWorkload;
  t.columns = {kNameColumn,
               {"Desired", "integer", "", "Number of desired pods.", 0},
               {"Current", "integer", "", "Number of actual replicas.", 0},
               {"Ready", "integer", "", "Number of ready replicas.", 0},
               kAgeColumn,
               kContainersColumn,
               kImagesColumn,
               kSelectorColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    auto [containers, images] = ContainersAndImages(o);
    return Json::array({Name(o), SpecReplicas(o), StatusInt(o, "replicas"),
                        StatusInt(o, "readyReplicas"), AgeOf(o, now), containers, images,
                        LabelSelectorString(Find(o, {"spec", "selector"}))});
  };
  return t;
}

ResourceType StatefulSets() {
  ResourceType t =
      MakeType("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, {"sts"}, {"all"});
  t.subresources = {"status", "scale"};
  t.set_defaults = [](Json& o) {
    Json& spec = o["spec"];
    if (!spec.contains("replicas")) spec["replicas"] = 1;
    if (!spec.contains("podManagementPolicy")) spec["podManagementPolicy"] = "OrderedReady";
    if (!spec.contains("updateStrategy") || !spec["updateStrategy"].is_object()) {
      spec["updateStrategy"] = Json::object();
    }
    if (StringAt(spec["updateStrategy"], "type").empty()) {
      spec["updateStrategy"]["type"] = "RollingUpdate";
    }
    if (StringAt(spec["updateStrategy"], "type") == "RollingUpdate" &&
        !Find(spec, {"updateStrategy", "rollingUpdate"})) {
      spec["updateStrategy"]["rollingUpdate"] = {{"partition", 0}};
    }
    if (!spec.contains("revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
    if (!spec.contains("persistentVolumeClaimRetentionPolicy")) {
      spec["persistentVolumeClaimRetentionPolicy"] = {{"whenDeleted", "Retain"},
                                                      {"whenScaled", "Retain"}};
    }
    DefaultTemplate(o);
  };
  t.validate = [](const Json& o, const Json* old) {
    FieldErrors e = ValidateWorkload(o, old);
    const Json* policy = Find(o, {"spec", "podManagementPolicy"});
    if (policy && *policy != "OrderedReady" && *policy != "Parallel") {
      NotSupported(e, "spec.podManagementPolicy", *policy, "\"OrderedReady\", \"Parallel\"");
    }
    return e;
  };
  t.columns = {kNameColumn,
               {"Ready", "string", "", "Number of the pod with ready state", 0},
               kAgeColumn,
               kContainersColumn,
               kImagesColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    auto [containers, images] = ContainersAndImages(o);
    return Json::array({Name(o), absl::StrCat(StatusInt(o, "readyReplicas"), "/", SpecReplicas(o)),
                        AgeOf(o, now), containers, images});
  };
  return t;
}

ResourceType DaemonSets() {
  ResourceType t =
      MakeType("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, {"ds"}, {"all"});
  t.subresources = {"status"};
  t.set_defaults = [](Json& o) {
    Json& spec = o["spec"];
    if (!spec.contains("updateStrategy") || !spec["updateStrategy"].is_object()) {
      spec["updateStrategy"] = Json::object();
    }
    if (StringAt(spec["updateStrategy"], "type").empty()) {
      spec["updateStrategy"]["type"] = "RollingUpdate";
    }
    if (StringAt(spec["updateStrategy"], "type") == "RollingUpdate") {
      Json& ru = spec["updateStrategy"]["rollingUpdate"];
      if (!ru.contains("maxUnavailable")) ru["maxUnavailable"] = 1;
      if (!ru.contains("maxSurge")) ru["maxSurge"] = 0;
    }
    if (!spec.contains("revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
    DefaultTemplate(o);
  };
  t.validate = ValidateWorkload;
  t.columns = {kNameColumn,
               {"Desired", "integer", "", "Nodes that should run the daemon pod.", 0},
               {"Current", "integer", "", "Nodes running at least one daemon pod.", 0},
               {"Ready", "integer", "", "Nodes with a ready daemon pod.", 0},
               {"Up-to-date", "integer", "", "Nodes running the updated daemon pod.", 0},
               {"Available", "integer", "", "Nodes with an available daemon pod.", 0},
               {"Node Selector", "string", "", "Node selector of the template.", 0},
               kAgeColumn,
               kContainersColumn,
               kImagesColumn,
               kSelectorColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    auto [containers, images] = ContainersAndImages(o);
    std::vector<std::string> node_selector;
    if (const Json* ns = Find(o, {"spec", "template", "spec", "nodeSelector"});
        ns && ns->is_object()) {
      for (auto& [k, v] : ns->items()) {
        node_selector.push_back(absl::StrCat(k, "=", v.is_string() ? v.get<std::string>() : ""));
      }
    }
    return Json::array({Name(o), StatusInt(o, "desiredNumberScheduled"),
                        StatusInt(o, "currentNumberScheduled"), StatusInt(o, "numberReady"),
                        StatusInt(o, "updatedNumberScheduled"), StatusInt(o, "numberAvailable"),
                        node_selector.empty() ? "<none>" : absl::StrJoin(node_selector, ","),
                        AgeOf(o, now), containers, images,
                        LabelSelectorString(Find(o, {"spec", "selector"}))});
  };
  return t;
}

ResourceType ControllerRevisions() {
  ResourceType t = MakeType("apps", "v1", "ControllerRevision", "controllerrevisions",
                            "controllerrevision", true, {}, {});
  t.set_defaults = [](Json&) {};
  t.validate = [](const Json& o, const Json* old) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    if (!o.contains("revision") || !o["revision"].is_number_integer()) {
      Required(e, "revision");
    } else if (o["revision"].get<int64_t>() < 0) {
      Invalid(e, "revision", o["revision"], "must be greater than or equal to 0");
    }
    if (old != nullptr && o.value("data", Json()) != old->value("data", Json())) {
      Invalid(e, "data", o.value("data", Json()), "field is immutable");
    }
    return e;
  };
  t.columns = {kNameColumn,
               {"Controller", "string", "", "Controller of the object.", 0},
               {"Revision", "integer", "", "Revision of the ControllerRevision.", 0},
               kAgeColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    std::string controller = "<none>";
    if (const Json* refs = Find(o, {"metadata", "ownerReferences"}); refs && refs->is_array()) {
      for (const Json& r : *refs) {
        if (r.value("controller", false)) {
          std::string kind = StringAt(r, "kind");
          for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          const std::string api = StringAt(r, "apiVersion");
          const std::string group =
              api.find('/') == std::string::npos ? "" : "." + api.substr(0, api.find('/'));
          controller = absl::StrCat(kind, group, "/", StringAt(r, "name"));
        }
      }
    }
    return Json::array({Name(o), controller, IntAt(o, "revision"), AgeOf(o, now)});
  };
  return t;
}

}  // namespace

std::vector<ResourceType> AppsTypes() {
  return {ControllerRevisions(), DaemonSets(), Deployments(), ReplicaSets(), StatefulSets()};
}

std::vector<ResourceType> CoordinationTypes() {
  ResourceType t = MakeType("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, {}, {});
  t.set_defaults = [](Json&) {};
  t.validate = [](const Json& o, const Json*) {
    FieldErrors e;
    ValidateObjectMeta(o, true, false, e);
    if (const Json* d = Find(o, {"spec", "leaseDurationSeconds"});
        d && (!d->is_number_integer() || d->get<int64_t>() <= 0)) {
      Invalid(e, "spec.leaseDurationSeconds", *d, "must be greater than 0");
    }
    return e;
  };
  t.columns = {kNameColumn, {"Holder", "string", "", "The holder of the lease.", 0}, kAgeColumn};
  t.row_cells = [](const Json& o, absl::Time now) {
    const Json* holder = Find(o, {"spec", "holderIdentity"});
    return Json::array(
        {Name(o), holder && holder->is_string() ? *holder : Json(""), AgeOf(o, now)});
  };
  return {t};
}

}  // namespace ganglion::orchestrator
