#include "orchestrator/reconcile/object_client.h"

#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator {

const ResourceType& TypeOf(const std::string& group, const std::string& plural) {
  for (const ResourceType& t : AllResourceTypes()) {
    if (t.group == group && t.plural == plural) return t;
  }
  std::abort();  // the registry is fixed: a caller naming an unknown type is a bug
}

std::string ResourcePath(const ResourceType& type, const std::string& namespace_name,
                         const std::string& name, const std::string& subresource) {
  std::string path =
      type.group.empty() ? "/api/v1" : absl::StrCat("/apis/", type.group, "/", type.version);
  if (type.namespaced && !namespace_name.empty()) {
    absl::StrAppend(&path, "/namespaces/", namespace_name);
  }
  absl::StrAppend(&path, "/", type.plural);
  if (!name.empty()) absl::StrAppend(&path, "/", name);
  if (!subresource.empty()) absl::StrAppend(&path, "/", subresource);
  return path;
}

namespace {

absl::Status FromHttp(int code, const Json& body) {
  const std::string message = body.is_object() ? body.value("message", "") : "";
  const std::string reason = body.is_object() ? body.value("reason", "") : "";
  switch (code) {
    case 404:
      return absl::NotFoundError(message);
    case 409:
      if (reason == "AlreadyExists") return absl::AlreadyExistsError(message);
      return absl::AbortedError(message);
    case 400:
    case 422:
      return absl::InvalidArgumentError(message);
    case 410:
      return absl::OutOfRangeError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    default:
      if (code >= 500) return absl::UnavailableError(message);
      return absl::UnknownError(absl::StrCat("HTTP ", code, ": ", message));
  }
}

std::string Rfc3339Now() { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()); }

}  // namespace

ObjectClient::ObjectClient(ApiHandler& api, std::function<bool()> may_write, std::string component)
    : api_(api), may_write_(std::move(may_write)), component_(std::move(component)) {}

absl::StatusOr<Json> ObjectClient::Call(const std::string& method, const std::string& path,
                                        const std::string& content_type, const Json* body,
                                        const std::map<std::string, std::string>& query,
                                        bool is_write) {
  if (is_write && may_write_ && !may_write_()) {
    return absl::FailedPreconditionError("writer fenced: leadership ended");
  }
  HttpRequest request;
  request.method = method;
  request.path = path;
  request.query = query;
  request.accept = "application/json";
  request.content_type = content_type;
  if (body != nullptr) request.body = body->dump();
  HttpResponse response = api_.Handle(request);
  Json parsed = Json::parse(response.body, nullptr, false);
  if (response.status >= 300) return FromHttp(response.status, parsed);
  if (parsed.is_discarded()) return absl::InternalError("unparsable API response");
  return parsed;
}

absl::StatusOr<Json> ObjectClient::Get(const ResourceType& type, const std::string& namespace_name,
                                       const std::string& name) {
  return Call("GET", ResourcePath(type, namespace_name, name), "", nullptr, {}, false);
}

absl::StatusOr<Json> ObjectClient::Create(const ResourceType& type, const Json& object) {
  const std::string ns =
      object.contains("metadata") ? object["metadata"].value("namespace", "") : "";
  return Call("POST", ResourcePath(type, ns), "application/json", &object);
}

absl::StatusOr<Json> ObjectClient::Update(const ResourceType& type, const Json& object,
                                          const std::string& subresource) {
  const Json& meta = object.at("metadata");
  if (meta.value("resourceVersion", "").empty()) {
    return absl::InvalidArgumentError("update without metadata.resourceVersion");
  }
  return Call("PUT",
              ResourcePath(type, meta.value("namespace", ""), meta.value("name", ""), subresource),
              "application/json", &object);
}

absl::StatusOr<Json> ObjectClient::Patch(const ResourceType& type,
                                         const std::string& namespace_name,
                                         const std::string& name, PatchType patch_type,
                                         const Json& patch, const std::string& subresource) {
  const char* content_type = patch_type == PatchType::kJson    ? "application/json-patch+json"
                             : patch_type == PatchType::kMerge ? "application/merge-patch+json"
                                 : "application/strategic-merge-patch+json";
  return Call("PATCH", ResourcePath(type, namespace_name, name, subresource), content_type, &patch);
}

absl::Status ObjectClient::Delete(const ResourceType& type, const std::string& namespace_name,
                                  const std::string& name, const DeleteOptions& options) {
  Json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.propagation.empty()) body["propagationPolicy"] = options.propagation;
  if (options.grace_period_seconds) body["gracePeriodSeconds"] = *options.grace_period_seconds;
  if (!options.uid.empty()) body["preconditions"]["uid"] = options.uid;
  if (!options.resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = options.resource_version;
  }
  return Call("DELETE", ResourcePath(type, namespace_name, name), "application/json", &body)
      .status();
}

absl::Status ObjectClient::Bind(const std::string& namespace_name, const std::string& pod_name,
                                const std::string& pod_uid, const std::string& node_name) {
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", pod_name}, {"namespace", namespace_name}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node_name}}}};
  if (!pod_uid.empty()) binding["metadata"]["uid"] = pod_uid;
  return Call("POST", ResourcePath(TypeOf("", "pods"), namespace_name, pod_name, "binding"),
              "application/json", &binding)
      .status();
}

absl::Status ObjectClient::RecordEvent(const Json& involved, const std::string& type,
                                       const std::string& reason, const std::string& message) {
  const Json& meta = involved.at("metadata");
  std::string ns = meta.value("namespace", "");
  if (ns.empty()) ns = "default";
  thread_local std::mt19937_64 random(std::random_device{}());
  const std::string now = Rfc3339Now();
  Json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata",
       {{"name", absl::StrCat(meta.value("name", ""), ".", absl::Hex(random(), absl::kZeroPad16))},
        {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", involved.value("apiVersion", "")},
        {"kind", involved.value("kind", "")},
        {"namespace", meta.value("namespace", "")},
        {"name", meta.value("name", "")},
        {"uid", meta.value("uid", "")},
        {"resourceVersion", meta.value("resourceVersion", "")}}},
      {"reason", reason},
      {"message", message},
      {"type", type},
      {"source", {{"component", component_}}},
      {"reportingComponent", component_},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1}};
  return Create(TypeOf("", "events"), event).status();
}

}  // namespace ganglion::orchestrator
