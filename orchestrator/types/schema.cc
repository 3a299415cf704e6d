#include "orchestrator/types/schema.h"

#include <climits>
#include <map>

#include "absl/strings/str_cat.h"

namespace ganglion::orchestrator {

namespace {

using Json = nlohmann::json;

struct Index {
  std::vector<TypeSchema> storage;
  std::vector<const TypeSchema*> all;
  std::map<std::string_view, const TypeSchema*, std::less<>> by_name;
};

const Index& TheIndex() {
  static const Index* const index = [] {
    auto* ix = new Index;
    for (auto table :
         {schema_tables::MetaV1Schemas, schema_tables::CoreV1Schemas, schema_tables::AppsV1Schemas,
          schema_tables::AutoscalingV1Schemas, schema_tables::CoordinationV1Schemas}) {
      for (TypeSchema& t : table()) ix->storage.push_back(t);
    }
    for (const TypeSchema& t : ix->storage) {
      ix->all.push_back(&t);
      ix->by_name.emplace(t.name, &t);
    }
    return ix;
  }();
  return *index;
}

// Our own one-line descriptions of the kinds and of the types users meet most.
const std::map<std::string_view, std::string_view, std::less<>>& Descriptions() {
  static const auto* const m = new std::map<std::string_view, std::string_view, std::less<>>{
      {"io.k8s.api.core.v1.Namespace", "A scope for names; objects in it are deleted with it."},
      {"io.k8s.api.core.v1.Node", "A machine that runs pods, registered by its agent."},
      {"io.k8s.api.core.v1.Pod", "A group of containers scheduled together onto one node."},
      {"io.k8s.api.core.v1.PodSpec", "What a pod runs and how: containers, volumes, scheduling."},
      {"io.k8s.api.core.v1.Container", "One process image run inside a pod."},
      {"io.k8s.api.core.v1.Service", "A stable address balancing over the pods a selector picks."},
      {"io.k8s.api.core.v1.Endpoints", "The addresses currently behind a service."},
      {"io.k8s.api.core.v1.ConfigMap", "Configuration data as string or binary key-value pairs."},
      {"io.k8s.api.core.v1.Event", "A report of something that happened to an object."},
      {"io.k8s.api.core.v1.PersistentVolume", "A piece of storage available to the cluster."},
      {"io.k8s.api.core.v1.PersistentVolumeClaim", "A request for storage by a user."},
      {"io.k8s.api.core.v1.Binding", "Assigns a pod to a node (the scheduler's write)."},
      {"io.k8s.api.apps.v1.Deployment", "Declarative rollouts of a pod template via replica sets."},
      {"io.k8s.api.apps.v1.DeploymentStrategy",
       "How a deployment replaces old pods with new ones."},
      {"io.k8s.api.apps.v1.ReplicaSet", "Keeps a number of identical pods running."},
      {"io.k8s.api.apps.v1.StatefulSet", "Pods with stable names and storage, ordered."},
      {"io.k8s.api.apps.v1.DaemonSet", "One pod per eligible node."},
      {"io.k8s.api.apps.v1.ControllerRevision", "An immutable snapshot of a workload's template."},
      {"io.k8s.api.autoscaling.v1.Scale", "The replica count of a scalable resource."},
      {"io.k8s.api.coordination.v1.Lease", "A lease held by one holder for a duration."},
      {"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "Metadata every stored object has."},
      {"io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
       "Selects objects by label equality and set expressions."},
      {"io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "Options of a delete request."},
      {"io.k8s.apimachinery.pkg.apis.meta.v1.Status",
       "The outcome of a request that returns no object."},
  };
  return *m;
}

// Our own one-line descriptions of the fields users set most, by
// "<short type name>.<field>".
const std::map<std::string_view, std::string_view, std::less<>>& FieldDescriptions() {
  static const auto* const m = new std::map<std::string_view, std::string_view, std::less<>>{
      {"ObjectMeta.name", "Unique within its namespace (or cluster, for cluster-scoped kinds)."},
      {"ObjectMeta.namespace", "The namespace the object lives in."},
      {"ObjectMeta.labels", "Key-value pairs selectors match on."},
      {"ObjectMeta.annotations", "Key-value pairs for tools; not used for selection."},
      {"ObjectMeta.generateName", "A prefix the server completes into a unique name."},
      {"ObjectMeta.ownerReferences", "Objects this one depends on; deleting them deletes it."},
      {"ObjectMeta.finalizers", "Tasks that must finish before the object is removed."},
      {"DeploymentSpec.replicas", "How many pods to run (default 1)."},
      {"DeploymentSpec.selector", "Which pods the deployment owns; must match the template."},
      {"DeploymentSpec.template", "The pods to create."},
      {"DeploymentSpec.strategy", "How to replace old pods with new ones."},
      {"DeploymentSpec.paused", "While true, template changes start no rollout."},
      {"DeploymentSpec.revisionHistoryLimit", "Old replica sets kept for rollback (default 10)."},
      {"DeploymentStrategy.type", "RollingUpdate (default) or Recreate."},
      {"DeploymentStrategy.rollingUpdate", "Bounds of a rolling update."},
      {"RollingUpdateDeployment.maxSurge", "Pods allowed above replicas during an update."},
      {"RollingUpdateDeployment.maxUnavailable", "Pods allowed below replicas during an update."},
      {"PodSpec.containers", "The containers of the pod; at least one."},
      {"PodSpec.initContainers", "Containers run to completion, in order, before the others."},
      {"PodSpec.volumes", "Storage the containers can mount."},
      {"PodSpec.restartPolicy", "Always (default), OnFailure or Never."},
      {"PodSpec.nodeName", "The node the pod is bound to."},
      {"PodSpec.nodeSelector", "Labels a node must have to run the pod."},
      {"PodSpec.affinity", "Rules attracting the pod to or away from nodes and pods."},
      {"PodSpec.tolerations", "Taints the pod tolerates."},
      {"PodSpec.serviceAccountName", "The service account the pod runs as."},
      {"PodSpec.terminationGracePeriodSeconds", "Seconds between SIGTERM and SIGKILL."},
      {"PodSpec.securityContext", "Security settings for every container of the pod."},
      {"Container.name", "Unique among the pod's containers."},
      {"Container.image", "The container image to run."},
      {"Container.command", "Replaces the image's entrypoint."},
      {"Container.args", "Arguments to the entrypoint."},
      {"Container.env", "Environment variables."},
      {"Container.envFrom", "Environment variables from config maps or secrets."},
      {"Container.ports", "Ports the container listens on (informational)."},
      {"Container.resources", "CPU and memory requests and limits."},
      {"Container.volumeMounts", "Where the pod's volumes appear in the container."},
      {"Container.livenessProbe", "Restarts the container when it fails."},
      {"Container.readinessProbe", "Keeps the pod out of service endpoints while it fails."},
      {"Container.startupProbe", "Holds the other probes until it succeeds once."},
      {"Container.imagePullPolicy", "Always, IfNotPresent or Never."},
      {"Container.workingDir", "The working directory of the process."},
      {"Container.securityContext", "Security settings for this container."},
      {"ResourceRequirements.limits", "The most the container may use."},
      {"ResourceRequirements.requests", "What the container is guaranteed; used to schedule."},
      {"ServiceSpec.selector", "Pods whose labels match receive the traffic."},
      {"ServiceSpec.ports", "The ports the service exposes."},
      {"ServiceSpec.type", "ClusterIP (default), NodePort, LoadBalancer or ExternalName."},
      {"ServiceSpec.clusterIP", "The virtual IP; \"None\" makes a headless service."},
      {"ServicePort.port", "The port the service listens on."},
      {"ServicePort.targetPort", "The pods' port: a number or a container port's name."},
      {"ConfigMap.data", "UTF-8 values by key."},
      {"ConfigMap.binaryData", "Binary values by key, base64 in JSON."},
      {"LabelSelector.matchLabels", "Labels that must all be present with these values."},
      {"LabelSelector.matchExpressions", "Set-based requirements, all of which must hold."},
  };
  return *m;
}

struct Walk {
  bool drop;
  std::vector<std::string> unknown;

  void Object(const TypeSchema& type, Json& object, const std::string& path, int depth) {
    if (!object.is_object() || depth > kSchemaDepthMax) return;
    for (auto it = object.begin(); it != object.end();) {
      const std::string child = path.empty() ? it.key() : absl::StrCat(path, ".", it.key());
      const FieldSchema* field = FindField(type, it.key());
      if (field == nullptr) {
        if (unknown.size() < kUnknownFieldsReportedMax) unknown.push_back(child);
        it = drop ? object.erase(it) : std::next(it);
        continue;
      }
      if (field->type == ValueType::kObject) Value(*field, it.value(), child, depth + 1);
      ++it;
    }
  }

  void Value(const FieldSchema& field, Json& value, const std::string& path, int depth) {
    const TypeSchema* type = FindTypeSchema(field.object_type);
    if (type == nullptr) return;  // the generator guarantees one; nothing to walk otherwise
    switch (field.shape) {
      case Shape::kOne:
      case Shape::kInline:
        Object(*type, value, path, depth);
        return;
      case Shape::kList:
        if (!value.is_array()) return;
        for (size_t i = 0; i < value.size(); ++i) {
          Object(*type, value[i], absl::StrCat(path, "[", i, "]"), depth);
        }
        return;
      case Shape::kMap:
        if (!value.is_object()) return;
        for (auto& [key, entry] : value.items()) {
          Object(*type, entry, absl::StrCat(path, ".", key), depth);
        }
        return;
    }
  }
};

std::string_view ShortName(std::string_view name) {
  const size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

// Go's name for a value of `f` (one element, for lists and maps).
std::string GoType(const FieldSchema& f) {
  switch (f.type) {
    case ValueType::kString:
      return "string";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kBool:
      return "bool";
    case ValueType::kDouble:
      return "float64";
    case ValueType::kBytes:
      return "[]uint8";
    case ValueType::kObject:
      return "v1." + std::string(ShortName(f.object_type));
    case ValueType::kQuantity:
      return "resource.Quantity";
    case ValueType::kIntOrString:
      return "intstr.IntOrString";
    case ValueType::kTime:
      return "v1.Time";
    case ValueType::kMicroTime:
      return "v1.MicroTime";
    case ValueType::kRawJson:
      return "runtime.RawExtension";
  }
  return "";
}

// How Go's decoder names the JSON value it could not store.
std::string GoValueKind(const Json& v) {
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "bool";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "number";
}

// The form Kubernetes' quantity parser accepts: a decimal number, then a
// binary suffix (Ki..Ei), a decimal one (n u m "" k M G T P E) or an exponent.
constexpr char kQuantityPattern[] = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

bool IsQuantity(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0, dots = 0;
  for (; i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'); ++i) {
    if (s[i] == '.') {
      ++dots;
    } else {
      ++digits;
    }
  }
  if (digits == 0 || dots > 1) return false;
  const std::string_view suffix = s.substr(i);
  static constexpr std::string_view kSuffixes[] = {"",  "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n",
                                                   "u", "m",  "k",  "M",  "G",  "T",  "P",  "E"};
  for (std::string_view known : kSuffixes) {
    if (suffix == known) return true;
  }
  if (suffix[0] != 'e' && suffix[0] != 'E') return false;
  size_t j = 1;
  if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) ++j;
  if (j == suffix.size()) return false;
  for (; j < suffix.size(); ++j) {
    if (suffix[j] < '0' || suffix[j] > '9') return false;
  }
  return true;
}

struct TypeCheck {
  std::string mismatch;

  // Whether one value of `f` has a JSON type `f` allows.
  bool Fits(const FieldSchema& f, const Json& v) {
    switch (f.type) {
      case ValueType::kString:
      case ValueType::kBytes:
      case ValueType::kTime:
      case ValueType::kMicroTime:
        return v.is_string();
      case ValueType::kInt32:
        return v.is_number_integer() && v.get<int64_t>() >= INT32_MIN &&
               v.get<int64_t>() <= INT32_MAX &&
               !(v.is_number_unsigned() && v.get<uint64_t>() > INT32_MAX);
      case ValueType::kInt64:
        return v.is_number_integer() &&
               !(v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
      case ValueType::kBool:
        return v.is_boolean();
      case ValueType::kDouble:
        return v.is_number();
      case ValueType::kObject:
        return v.is_object();
      case ValueType::kQuantity:
        return v.is_string() || v.is_number();
      case ValueType::kIntOrString:
        return v.is_string() || v.is_number_integer();
      case ValueType::kRawJson:
        return true;
    }
    return false;
  }

  void Fail(const TypeSchema& owner, const std::string& path, const Json& v, std::string go_type) {
    // A number that does not fit an integer field is named by its literal, as Go does.
    std::string kind = GoValueKind(v);
    if (v.is_number() && (go_type == "int32" || go_type == "int64")) kind = "number " + v.dump();
    mismatch = absl::StrCat("json: cannot unmarshal ", kind, " into Go struct field ",
                            std::string(ShortName(owner.name)), ".", path, " of type ", go_type);
  }

  // One value of `f` at `path`; recurses into objects.
  void Value(const TypeSchema& owner, const FieldSchema& f, const Json& v, const std::string& path,
             int depth) {
    if (v.is_null() || !mismatch.empty()) return;
    if (!Fits(f, v)) return Fail(owner, path, v, GoType(f));
    if (f.type == ValueType::kQuantity && v.is_string() && !IsQuantity(v.get<std::string>())) {
      // Kubernetes' Quantity decoder says only this, without the field.
      mismatch =
          absl::StrCat("quantities must match the regular expression '", kQuantityPattern, "'");
      return;
    }
    if (f.type == ValueType::kObject) {
      if (const TypeSchema* t = FindTypeSchema(f.object_type)) Object(*t, v, path, depth + 1);
    }
  }

  void Object(const TypeSchema& type, const Json& object, const std::string& path, int depth) {
    if (!object.is_object() || depth > kSchemaDepthMax) return;
    for (auto& [key, v] : object.items()) {
      if (!mismatch.empty()) return;
      const FieldSchema* f = FindField(type, key);
      if (f == nullptr || v.is_null()) continue;
      const std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
      switch (f->shape) {
        case Shape::kOne:
        case Shape::kInline:
          Value(type, *f, v, child, depth);
          break;
        case Shape::kList:
          if (!v.is_array()) {
            Fail(type, child, v, "[]" + GoType(*f));
          } else {
            for (const Json& e : v) Value(type, *f, e, child, depth);
          }
          break;
        case Shape::kMap:
          if (!v.is_object()) {
            Fail(type, child, v, "map[string]" + GoType(*f));
          } else {
            for (auto& [k, e] : v.items()) Value(type, *f, e, child, depth);
          }
          break;
      }
    }
  }
};

}  // namespace

void RemoveNullFields(const TypeSchema& type, Json& object, int depth) {
  if (!object.is_object() || depth > kSchemaDepthMax) return;
  for (auto it = object.begin(); it != object.end();) {
    const FieldSchema* f = FindField(type, it.key());
    if (f == nullptr) {
      ++it;
      continue;
    }
    if (it.value().is_null()) {
      it = object.erase(it);
      continue;
    }
    const TypeSchema* inner =
        f->type == ValueType::kObject ? FindTypeSchema(f->object_type) : nullptr;
    if (inner != nullptr) {
      Json& v = it.value();
      if (f->shape == Shape::kOne || f->shape == Shape::kInline) {
        RemoveNullFields(*inner, v, depth + 1);
      } else if (v.is_array() || (f->shape == Shape::kMap && v.is_object())) {
        for (Json& e : v) RemoveNullFields(*inner, e, depth + 1);
      }
    }
    ++it;
  }
}

void RemoveNullFields(const TypeSchema& type, Json& object) {
  RemoveNullFields(type, object, 0);
}

std::string TypeMismatch(const TypeSchema& type, const Json& object) {
  TypeCheck check;
  check.Object(type, object, "", 0);
  return check.mismatch;
}

const TypeSchema* FindTypeSchema(std::string_view name) {
  const Index& ix = TheIndex();
  auto it = ix.by_name.find(name);
  return it == ix.by_name.end() ? nullptr : it->second;
}

const std::vector<const TypeSchema*>& AllTypeSchemas() {
  return TheIndex().all;
}

std::string SchemaNameOf(std::string_view group, std::string_view version, std::string_view kind) {
  const std::string_view short_group = group.empty() ? "core" : group.substr(0, group.find('.'));
  return "io.k8s.api." + std::string(short_group) + "." + std::string(version) + "." +
         std::string(kind);
}

const TypeSchema* SchemaOfKind(std::string_view group, std::string_view version,
                               std::string_view kind) {
  // Typed clients send DeleteOptions under the group version they address
  // ("apps/v1"); it and Status are meta/v1's in every group.
  if (group == "meta.k8s.io" || kind == "DeleteOptions" || kind == "Status") {
    return FindTypeSchema("io.k8s.apimachinery.pkg.apis.meta.v1." + std::string(kind));
  }
  return FindTypeSchema(SchemaNameOf(group, version, kind));
}

const FieldSchema* FindField(const TypeSchema& type, std::string_view json_name) {
  for (const FieldSchema& f : type.fields) {
    if (f.shape == Shape::kInline) {
      const TypeSchema* inner = FindTypeSchema(f.object_type);
      if (inner == nullptr) continue;
      if (const FieldSchema* found = FindField(*inner, json_name)) return found;
    } else if (f.json_name == json_name) {
      return &f;
    }
  }
  return nullptr;
}

std::string_view TypeDescription(std::string_view name) {
  auto it = Descriptions().find(name);
  return it == Descriptions().end() ? std::string_view() : it->second;
}

std::string_view FieldDescription(std::string_view type_name, std::string_view field) {
  const size_t dot = type_name.rfind('.');
  const std::string key =
      std::string(dot == std::string_view::npos ? type_name : type_name.substr(dot + 1)) + "." +
      std::string(field);
  auto it = FieldDescriptions().find(key);
  return it == FieldDescriptions().end() ? std::string_view() : it->second;
}

std::vector<std::string> UnknownFields(const TypeSchema& type, Json& object, bool drop) {
  Walk walk{drop, {}};
  walk.Object(type, object, "", 0);
  return std::move(walk.unknown);
}

}  // namespace ganglion::orchestrator
