#include "orchestrator/api/discovery.h"

#include "absl/strings/str_cat.h"

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
    const std::string ref = absl::StrCat(
        "#/components/schemas/", t.group.empty() ? "core" : t.group, ".", t.version, ".", t.kind);
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

Json OpenApiV3Index() {
  Json paths = Json::object();
  for (const auto& [group, version] : ServedGroupVersions()) {
    const std::string path = GvPath(group, version);
    auto doc = OpenApiV3Document(path);
    paths[path] = {
        {"serverRelativeURL", absl::StrCat("/openapi/v3/", path, "?hash=", HashOf(doc->dump()))}};
  }
  return {{"paths", paths}};
}

std::optional<Json> OpenApiV3Document(const std::string& gv_path) {
  Json paths = Json::object();
  Json schemas = Json::object();
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
    schemas[absl::StrCat(t.group.empty() ? "core" : t.group, ".", t.version, ".", t.kind)] = {
        {"type", "object"},
        {"description", absl::StrCat(t.kind, " (fields are validated by the server)")},
        {"x-kubernetes-group-version-kind", Json::array({Gvk(t)})}};
  }
  if (!served) return std::nullopt;
  return Json{{"openapi", "3.0.0"},
              {"info", {{"title", "Ganglion"}, {"version", "v1.32.0"}}},
              {"paths", paths},
              {"components", {{"schemas", schemas}}}};
}

}  // namespace ganglion::orchestrator
