#include "orchestrator/types/schema.h"

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

}  // namespace

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
  if (group == "meta.k8s.io" || (group.empty() && (kind == "DeleteOptions" || kind == "Status"))) {
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

std::vector<std::string> UnknownFields(const TypeSchema& type, Json& object, bool drop) {
  Walk walk{drop, {}};
  walk.Object(type, object, "", 0);
  return std::move(walk.unknown);
}

}  // namespace ganglion::orchestrator
