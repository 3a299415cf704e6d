#include "orchestrator/api/discovery.h"

#include <deque>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "orchestrator/types/schema.h"

namespace ganglion::orchestrator {

namespace {

const Json kAllVerbs = {"create", "delete", "deletecollection", "get",
                        "list",   "patch",  "update",           "watch"};

Json GroupVersionEntry(const std::string& group, const std::string& version) {
  return {{"groupVersion", absl::StrCat(group, "/", version)}, {"version", version}};
}

std::string GvPath(const std::string& group, const std::string& version) {
  return group.empty() ? "api/" + version : absl::StrCat("apis/", group, "/", version);
}

// A stable hash of a document, for the ?hash= kubectl caches OpenAPI by.
std::string HashOf(const std::string& text) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16));
}

Json Gvk(const ResourceType& t) {
  return {{"group", t.group}, {"version", t.version}, {"kind", t.kind}};
}

Json QueryParameter(const std::string& name) {
  return {{"name", name}, {"in", "query"}, {"schema", {{"type", "string"}}}};
}

Json Operation(const ResourceType& t, const std::string& action, bool with_body, bool patch_types) {
  Json op = {{"operationId", absl::StrCat(action, t.kind)},
             {"x-kubernetes-action", action},
             {"x-kubernetes-group-version-kind", Gvk(t)},
             {"responses", {{"200", {{"description", "OK"}}}}}};
  Json params = Json::array({QueryParameter("pretty"), QueryParameter("dryRun")});
  if (with_body) {
    params.push_back(QueryParameter("fieldManager"));
    params.push_back(QueryParameter("fieldValidation"));
    const std::string ref =
        absl::StrCat("#/components/schemas/", SchemaNameOf(t.group, t.version, t.kind));
    Json content = Json::object();
    if (patch_types) {
      // No strategic-merge-patch here on purpose: kubectl then computes its
      // patches from its built-in types, which know every merge key.
      for (const char* type : {"application/json-patch+json", "application/merge-patch+json"}) {
        content[type] = {{"schema", {{"type", "object"}}}};
      }
    } else {
      content["application/json"] = {{"schema", {{"$ref", ref}}}};
    }
    op["requestBody"] = {{"content", content}, {"required", true}};
  }
  op["parameters"] = params;
  return op;
}

constexpr char kQuantityName[] = "io.k8s.apimachinery.pkg.api.resource.Quantity";
constexpr char kIntOrStringName[] = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
constexpr char kTimeName[] = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
constexpr char kMicroTimeName[] = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";
constexpr char kRawJsonName[] = "io.k8s.apimachinery.pkg.runtime.RawExtension";

Json Ref(std::string_view name) {
  Json ref = {{"$ref", "#/components/schemas/" + std::string(name)}};
  return {{"allOf", Json::array({ref})}};
}

// The schemas of the leaf types that are not objects of fields.
Json LeafSchema(std::string_view name) {
  if (name == kQuantityName) {
    return {{"description", "A quantity: 100m, 1, 1.5Gi, 2e3."},
            {"oneOf", Json::array({{{"type", "string"}}, {{"type", "number"}}})}};
  }
  if (name == kIntOrStringName) {
    return {{"description", "An integer or a string (a port number or a port name)."},
            {"type", "string"},
            {"format", "int-or-string"},
            {"x-kubernetes-int-or-string", true}};
  }
  if (name == kTimeName) {
    return {{"description", "A time in RFC 3339 form, seconds precision."},
            {"type", "string"},
            {"format", "date-time"}};
  }
  if (name == kMicroTimeName) {
    return {{"description", "A time in RFC 3339 form, microseconds precision."},
            {"type", "string"},
            {"format", "date-time"}};
  }
  return {{"description", "Any JSON object, kept as sent."},
          {"type", "object"},
          {"x-kubernetes-preserve-unknown-fields", true}};
}

// The schema of one value of a field (the items of a list, the values of a map).
Json ValueSchema(const FieldSchema& f) {
  switch (f.type) {
    case ValueType::kString:
      return {{"type", "string"}};
    case ValueType::kInt32:
      return {{"type", "integer"}, {"format", "int32"}};
    case ValueType::kInt64:
      return {{"type", "integer"}, {"format", "int64"}};
    case ValueType::kBool:
      return {{"type", "boolean"}};
    case ValueType::kDouble:
      return {{"type", "number"}, {"format", "double"}};
    case ValueType::kBytes:
      return {{"type", "string"}, {"format", "byte"}};
    case ValueType::kObject:
      return Ref(f.object_type);
    case ValueType::kQuantity:
      return Ref(kQuantityName);
    case ValueType::kIntOrString:
      return Ref(kIntOrStringName);
    case ValueType::kTime:
      return Ref(kTimeName);
    case ValueType::kMicroTime:
      return Ref(kMicroTimeName);
    case ValueType::kRawJson:
      return Ref(kRawJsonName);
  }
  return Json::object();
}

// The name a value's schema refers to, or "" for a plain scalar.
std::string_view ReferencedName(const FieldSchema& f) {
  switch (f.type) {
    case ValueType::kObject:
      return f.object_type;
    case ValueType::kQuantity:
      return kQuantityName;
    case ValueType::kIntOrString:
      return kIntOrStringName;
    case ValueType::kTime:
      return kTimeName;
    case ValueType::kMicroTime:
      return kMicroTimeName;
    case ValueType::kRawJson:
      return kRawJsonName;
    default:
      return "";
  }
}

// Adds `type`'s fields (inline members' too) to properties and required.
void AddProperties(const TypeSchema& type, Json& properties, Json& required, int depth) {
  if (depth > kSchemaDepthMax) return;
  for (const FieldSchema& f : type.fields) {
    if (f.shape == Shape::kInline) {
      if (const TypeSchema* inner = FindTypeSchema(f.object_type)) {
        AddProperties(*inner, properties, required, depth + 1);
      }
      continue;
    }
    Json p;
    if (f.shape == Shape::kList) {
      p = {{"type", "array"}, {"items", ValueSchema(f)}};
    } else if (f.shape == Shape::kMap) {
      p = {{"type", "object"}, {"additionalProperties", ValueSchema(f)}};
    } else {
      p = ValueSchema(f);
    }
    if (auto d = FieldDescription(type.name, f.json_name); !d.empty()) {
      p["description"] = std::string(d);
    }
    if (!f.patch_strategy.empty()) p["x-kubernetes-patch-strategy"] = std::string(f.patch_strategy);
    if (!f.merge_key.empty()) p["x-kubernetes-patch-merge-key"] = std::string(f.merge_key);
    properties[std::string(f.json_name)] = std::move(p);
    if (f.Has(kRequired)) required.push_back(std::string(f.json_name));
  }
}

Json ObjectSchema(const TypeSchema& type) {
  Json properties = Json::object();
  Json required = Json::array();
  AddProperties(type, properties, required, 0);
  Json s = {{"type", "object"}, {"properties", properties}};
  if (!required.empty()) s["required"] = required;
  if (auto d = TypeDescription(type.name); !d.empty()) s["description"] = std::string(d);
  return s;
}

// `roots` and every schema they reach, by name.
Json SchemasReachableFrom(const std::vector<std::string>& roots) {
  Json schemas = Json::object();
  std::set<std::string> seen;
  std::deque<std::string> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    const std::string name = todo.front();
    todo.pop_front();
    if (!seen.insert(name).second) continue;
    const TypeSchema* type = FindTypeSchema(name);
    if (type == nullptr) {
      schemas[name] = LeafSchema(name);
      continue;
    }
    schemas[name] = ObjectSchema(*type);
    for (const FieldSchema& f : type->fields) {
      if (auto ref = ReferencedName(f); !ref.empty()) todo.push_back(std::string(ref));
    }
  }
  return schemas;
}

}  // namespace

Json VersionDocument() {
  return {{"major", "1"},
          {"minor", "32"},
          {"gitVersion", "v1.32.0-ganglion"},
          {"gitCommit", "ganglion"},
          {"gitTreeState", "clean"},
          {"buildDate", "2026-01-01T00:00:00Z"},
          {"goVersion", "n/a (C++)"},
          {"compiler", "gcc"},
          {"platform", "linux/amd64"}};
}

Json CoreApiVersions(const std::string& server_address) {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs",
           Json::array({{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}})}};
}

Json ApiGroupList() {
  Json groups = Json::array();
  for (const auto& [group, version] : ServedGroupVersions()) {
    if (group.empty()) continue;
    Json gv = GroupVersionEntry(group, version);
    groups.push_back({{"name", group}, {"versions", {gv}}, {"preferredVersion", gv}});
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

std::optional<Json> ApiGroup(const std::string& group) {
  for (const auto& [g, version] : ServedGroupVersions()) {
    if (g != group || g.empty()) continue;
    Json gv = GroupVersionEntry(g, version);
    return Json{{"kind", "APIGroup"},
                {"apiVersion", "v1"},
                {"name", g},
                {"versions", {gv}},
                {"preferredVersion", gv}};
  }
  return std::nullopt;
}

std::optional<Json> ApiResourceList(const std::string& group, const std::string& version) {
  Json resources = Json::array();
  for (const ResourceType& t : AllResourceTypes()) {
    if (t.group != group || t.version != version) continue;
    Json r = {{"name", t.plural},
              {"singularName", t.singular},
              {"namespaced", t.namespaced},
              {"kind", t.kind},
              {"verbs", kAllVerbs},
              {"storageVersionHash", HashOf(t.ApiVersion() + t.kind).substr(0, 11)}};
    if (!t.short_names.empty()) r["shortNames"] = t.short_names;
    if (!t.categories.empty()) r["categories"] = t.categories;
    resources.push_back(r);
    for (const std::string& sub : t.subresources) {
      Json s = {{"name", t.plural + "/" + sub},
                {"singularName", ""},
                {"namespaced", t.namespaced},
                {"kind", t.kind}};
      if (sub == "status") s["verbs"] = {"get", "patch", "update"};
      if (sub == "scale") {
        s["verbs"] = {"get", "patch", "update"};
        s["group"] = "autoscaling";
        s["version"] = "v1";
        s["kind"] = "Scale";
      }
      if (sub == "binding") {
        s["verbs"] = {"create"};
        s["kind"] = "Binding";
      }
      if (sub == "log") s["verbs"] = {"get"};
      resources.push_back(s);
    }
  }
  if (resources.empty()) return std::nullopt;
  return Json{{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", group.empty() ? version : group + "/" + version},
              {"resources", resources}};
}

namespace {

std::optional<Json> BuildOpenApiV3Document(const std::string& gv_path);

// The documents are pure functions of static tables (about 100 KB each):
// built once, on first use, and their hashes with them.
struct OpenApiDocuments {
  std::map<std::string, Json> by_path;
  Json index;
};

const OpenApiDocuments& Documents() {
  static const OpenApiDocuments* const documents = [] {
    auto* d = new OpenApiDocuments;
    Json paths = Json::object();
    for (const auto& [group, version] : ServedGroupVersions()) {
      const std::string path = GvPath(group, version);
      Json doc = *BuildOpenApiV3Document(path);
      paths[path] = {
          {"serverRelativeURL", absl::StrCat("/openapi/v3/", path, "?hash=", HashOf(doc.dump()))}};
      d->by_path.emplace(path, std::move(doc));
    }
    d->index = {{"paths", paths}};
    return d;
  }();
  return *documents;
}

}  // namespace

Json OpenApiV3Index() {
  return Documents().index;
}

std::optional<Json> OpenApiV3Document(const std::string& gv_path) {
  const auto& docs = Documents().by_path;
  auto it = docs.find(gv_path);
  if (it == docs.end()) return std::nullopt;
  return it->second;
}

namespace {

std::optional<Json> BuildOpenApiV3Document(const std::string& gv_path) {
  Json paths = Json::object();
  std::vector<std::string> roots = {"io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                                    "io.k8s.apimachinery.pkg.apis.meta.v1.Status"};
  std::vector<const ResourceType*> kinds;
  bool served = false;
  for (const ResourceType& t : AllResourceTypes()) {
    if (GvPath(t.group, t.version) != gv_path) continue;
    served = true;
    const std::string base = "/" + gv_path;
    const std::string collection = t.namespaced
                                       ? absl::StrCat(base, "/namespaces/{namespace}/", t.plural)
                                       : absl::StrCat(base, "/", t.plural);
    const std::string item = collection + "/{name}";
    paths[collection] = {{"get", Operation(t, "list", false, false)},
                         {"post", Operation(t, "post", true, false)},
                         {"delete", Operation(t, "deletecollection", false, false)}};
    paths[item] = {{"get", Operation(t, "get", false, false)},
                   {"put", Operation(t, "put", true, false)},
                   {"patch", Operation(t, "patch", true, true)},
                   {"delete", Operation(t, "delete", false, false)}};
    roots.push_back(SchemaNameOf(t.group, t.version, t.kind));
    if (t.HasSubresource("scale")) roots.push_back(SchemaNameOf("autoscaling", "v1", "Scale"));
    kinds.push_back(&t);
  }
  if (!served) return std::nullopt;
  Json schemas = SchemasReachableFrom(roots);
  for (const ResourceType* t : kinds) {
    schemas[SchemaNameOf(t->group, t->version, t->kind)]["x-kubernetes-group-version-kind"] =
        Json::array({Gvk(*t)});
  }
  if (const std::string scale = SchemaNameOf("autoscaling", "v1", "Scale");
      schemas.contains(scale)) {
    schemas[scale]["x-kubernetes-group-version-kind"] = {
        {{"group", "autoscaling"}, {"version", "v1"}, {"kind", "Scale"}}};
  }
  return Json{{"openapi", "3.0.0"},
              {"info", {{"title", "Ganglion"}, {"version", "v1.32.0"}}},
              {"paths", paths},
              {"components", {{"schemas", schemas}}}};
}

}  // namespace

}  // namespace ganglion::orchestrator
