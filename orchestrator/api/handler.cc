#include "orchestrator/api/handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "orchestrator/api/discovery.h"
#include "orchestrator/api/log_proxy.h"
#include "orchestrator/api/patch.h"
#include "orchestrator/api/protobuf.h"
#include "orchestrator/types/schema.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator {

namespace {

constexpr char kRegistryPrefix[] = "/registry/";
// Attempts of a read-modify-write (patch, scale, finalizer removal) before a
// persistent conflict is returned to the client.
constexpr int kConflictRetriesMax = 5;
// Page size when the handler itself walks a prefix (selectors with a limit,
// dependents, deletecollection), so one request never reads unboundedly at once.
constexpr int64_t kScanPageObjectsMax = 500;
// Depth of owner -> dependent cascades (deployment -> replica set -> pod).
constexpr int kCascadeDepthMax = 4;
// Service cluster IPs come from 10.96.0.0/12, Kubernetes' default range.
constexpr uint32_t kClusterIpRangeBase = (10u << 24) | (96u << 16);
constexpr uint64_t kClusterIpRangeSize = 1u << 20;
// Random picks before giving up; a range this size fills long before it fails.
constexpr int kClusterIpAttemptsMax = 64;
const std::vector<std::string> kDefaultNamespaces = {"default", "kube-system", "kube-public",
                                                     "kube-node-lease"};

std::string NowRfc3339() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

HttpResponse JsonResponse(int status, const Json& body) {
  return HttpResponse{status, "application/json", body.dump(), {}};
}

std::string MetaString(const Json& o, const char* field) {
  const Json* v = Find(o, {"metadata", field});
  return v && v->is_string() ? v->get<std::string>() : "";
}

// The object without what the server owns, to tell whether a write changes anything.
Json Comparable(Json o) {
  if (o.contains("metadata") && o["metadata"].is_object()) {
    o["metadata"].erase("resourceVersion");
    o["metadata"].erase("managedFields");
  }
  return o;
}

// Everything but metadata and status: a change bumps metadata.generation.
Json SpecPart(const Json& o) {
  Json s = o.is_object() ? o : Json::object();
  s.erase("metadata");
  s.erase("status");
  return s;
}

struct ContinueToken {
  int64_t revision = 0;
  std::string start_key;
};

std::string EncodeContinue(int64_t revision, const std::string& next_key) {
  Json t = {{"v", "meta.k8s.io/v1"}, {"rv", revision}, {"start", next_key}};
  return absl::WebSafeBase64Escape(t.dump());
}

std::optional<ContinueToken> DecodeContinue(const std::string& token) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return std::nullopt;
  Json t = Json::parse(raw, nullptr, false);
  if (!t.is_object() || !t.contains("rv") || !t["rv"].is_number_integer() || !t.contains("start") ||
      !t["start"].is_string()) {
    return std::nullopt;
  }
  return ContinueToken{t["rv"].get<int64_t>(), t["start"].get<std::string>()};
}

std::optional<int64_t> ParseRevision(const std::string& rv) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(rv, &n) || n < 0) return std::nullopt;
  return n;
}

enum class FieldValidation { kIgnore, kWarn, kStrict };

// ?fieldValidation=: Strict (kubectl's default), Warn (the server's default,
// as in Kubernetes 1.27+), Ignore.
std::variant<FieldValidation, ApiError> FieldValidationOf(const HttpRequest& request) {
  auto it = request.query.find("fieldValidation");
  if (it == request.query.end() || it->second.empty() || it->second == "Warn") {
    return FieldValidation::kWarn;
  }
  if (it->second == "Strict") return FieldValidation::kStrict;
  if (it->second == "Ignore") return FieldValidation::kIgnore;
  return BadRequest(absl::StrCat("fieldValidation must be one of Ignore, Warn or Strict, not \"",
                                 it->second, "\""));
}

// Values of the wrong JSON type are a 400 in every mode, as Kubernetes'
// decoder makes them. Unknown fields anywhere in the object (judged by the
// kind's field schema) and duplicate fields of the JSON body: Strict rejects the request with
// Kubernetes' "strict decoding error", Warn drops the unknown fields and says
// so in Warning headers, Ignore drops them silently. `kind` and `version`
// name the body's type in the error.
std::optional<ApiError> ApplyFieldValidation(const TypeSchema* schema, const std::string& kind,
                                             const std::string& version, Json& object,
                                             const HttpRequest& request,
                                             const std::vector<std::string>& duplicates,
                                             std::vector<std::string>& warnings) {
  auto mode = FieldValidationOf(request);
  if (auto* e = std::get_if<ApiError>(&mode)) return *e;
  // A value of the wrong JSON type cannot be decoded in any mode.
  if (schema != nullptr) {
    if (std::string mismatch = TypeMismatch(*schema, object); !mismatch.empty()) {
      return BadRequest(absl::StrCat(kind, " in version \"", version, "\" cannot be handled as a ",
                                     kind, ": ", mismatch));
    }
  }
  if (schema != nullptr) RemoveNullFields(*schema, object);
  const FieldValidation validation = std::get<FieldValidation>(mode);
  std::vector<std::string> problems;
  for (const std::string& d : duplicates)
    problems.push_back(absl::StrCat("duplicate field \"", d, "\""));
  if (schema != nullptr) {
    for (const std::string& u :
         UnknownFields(*schema, object, /*drop=*/validation != FieldValidation::kStrict)) {
      problems.push_back(absl::StrCat("unknown field \"", u, "\""));
    }
  }
  if (problems.empty() || validation == FieldValidation::kIgnore) return std::nullopt;
  if (validation == FieldValidation::kWarn) {
    warnings.insert(warnings.end(), problems.begin(), problems.end());
    return std::nullopt;
  }
  return BadRequest(absl::StrCat(kind, " in version \"", version, "\" cannot be handled as a ",
                                 kind, ": strict decoding error: ", absl::StrJoin(problems, ", ")));
}

std::optional<ApiError> ApplyFieldValidation(const ResourceType& type, Json& object,
                                             const HttpRequest& request,
                                             const std::vector<std::string>& duplicates,
                                             std::vector<std::string>& warnings) {
  return ApplyFieldValidation(SchemaOfKind(type.group, type.version, type.kind), type.kind,
                              type.version, object, request, duplicates, warnings);
}

std::optional<ApiError> ApplyScaleFieldValidation(Json& object, const HttpRequest& request,
                                                  const std::vector<std::string>& duplicates,
                                                  std::vector<std::string>& warnings) {
  return ApplyFieldValidation(SchemaOfKind("autoscaling", "v1", "Scale"), "Scale", "v1", object,
                              request, duplicates, warnings);
}

}  // namespace

HttpResponse ErrorResponse(const ApiError& error) {
  return JsonResponse(error.code, StatusJson(error));
}

ApiHandler::ApiHandler(ObjectStore& store, std::string server_address)
    : store_(store), server_address_(std::move(server_address)), random_(std::random_device{}()) {}

std::string ApiHandler::NewUid() {
  std::lock_guard<std::mutex> lock(random_mu_);
  uint64_t a = random_(), b = random_();
  a = (a & 0xffffffffffff0fffull) | 0x4000ull;              // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // RFC 4122 variant
  const std::string hex =
      absl::StrCat(absl::Hex(a, absl::kZeroPad16), absl::Hex(b, absl::kZeroPad16));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20, 12));
}

std::string ApiHandler::RandomSuffix() {
  // The alphabet Kubernetes uses for generateName: no vowels, no look-alikes.
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::lock_guard<std::mutex> lock(random_mu_);
  std::string s;
  for (int i = 0; i < 5; ++i) s.push_back(kAlphabet[random_() % (sizeof(kAlphabet) - 1)]);
  return s;
}

std::string ApiHandler::KeyFor(const ResourceType& type, const std::string& namespace_name,
                               const std::string& name) const {
  return type.namespaced
             ? absl::StrCat(kRegistryPrefix, type.plural, "/", namespace_name, "/", name)
             : absl::StrCat(kRegistryPrefix, type.plural, "/", name);
}

std::string ApiHandler::PrefixFor(const ResourceType& type,
                                  const std::string& namespace_name) const {
  if (type.namespaced && !namespace_name.empty()) {
    return absl::StrCat(kRegistryPrefix, type.plural, "/", namespace_name, "/");
  }
  return absl::StrCat(kRegistryPrefix, type.plural, "/");
}

Json ApiHandler::Decode(const StoredObject& stored) const {
  return ParseStoredObject(stored.value, stored.mod_revision);
}

std::string ApiHandler::EncodeStored(const StoredObject& stored) const {
  // Stored objects are written by this server with sorted keys, so the first
  // "metadata":{ is the object's own (apiVersion and kind sort before it).
  static constexpr char kMetadata[] = "\"metadata\":{";
  const size_t at = stored.value.find(kMetadata);
  if (at == std::string::npos || stored.value.find("\"resourceVersion\"") != std::string::npos) {
    return Decode(stored).dump();
  }
  const size_t insert_at = at + sizeof(kMetadata) - 1;
  const bool empty = insert_at < stored.value.size() && stored.value[insert_at] == '}';
  std::string out;
  out.reserve(stored.value.size() + 40);
  out.append(stored.value, 0, insert_at);
  absl::StrAppend(&out, "\"resourceVersion\":\"", stored.mod_revision, "\"", empty ? "" : ",");
  out.append(stored.value, insert_at, std::string::npos);
  return out;
}

absl::Status ApiHandler::EnsureDefaultNamespaces() {
  const ResourceType* ns = FindResourceType("", "v1", "namespaces");
  for (const std::string& name : kDefaultNamespaces) {
    Json o = {
        {"apiVersion", "v1"},
        {"kind", "Namespace"},
        {"metadata", {{"name", name}, {"uid", NewUid()}, {"creationTimestamp", NowRfc3339()}}}};
    ns->set_defaults(o);
    auto created = store_.Create(KeyFor(*ns, "", name), o.dump());
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
  }
  return absl::OkStatus();
}

bool ApiHandler::WantsTable(const HttpRequest& request) const {
  return absl::StrContains(request.accept, "as=Table");
}

Json ApiHandler::ToTable(const ResourceType& type, const std::vector<Json>& objects,
                         IncludeObject include, bool with_columns,
                         const std::string& resource_version,
                         const std::string& continue_token) const {
  const absl::Time now = absl::Now();
  Json columns = Json::array();
  if (with_columns) {
    for (const TableColumn& c : type.columns) {
      columns.push_back({{"name", c.name},
                         {"type", c.type},
                         {"format", c.format},
                         {"description", c.description},
                         {"priority", c.priority}});
    }
  }
  Json rows = Json::array();
  for (const Json& o : objects) {
    Json row = {{"cells", type.row_cells(o, now)}};
    if (include == IncludeObject::kObject) {
      row["object"] = o;
    } else if (include == IncludeObject::kMetadata) {
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", o.value("metadata", Json::object())}};
    }
    rows.push_back(row);
  }
  Json meta = {{"resourceVersion", resource_version}};
  if (!continue_token.empty()) meta["continue"] = continue_token;
  Json table = {{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta}};
  if (with_columns) table["columnDefinitions"] = columns;
  table["rows"] = rows;
  return table;
}

std::optional<HttpResponse> ApiHandler::HandleNonResource(const HttpRequest& r) {
  const std::string& p = r.path;
  if (p == "/version" || p == "/version/") return JsonResponse(200, VersionDocument());
  if (p == "/healthz" || p == "/livez" || p == "/readyz") {
    return HttpResponse{200, "text/plain", "ok", {}};
  }
  if (p == "/api" || p == "/api/") return JsonResponse(200, CoreApiVersions(server_address_));
  if (p == "/apis" || p == "/apis/") return JsonResponse(200, ApiGroupList());
  if (p == "/openapi/v3" || p == "/openapi/v3/") return JsonResponse(200, OpenApiV3Index());
  if (absl::StartsWith(p, "/openapi/v3/")) {
    auto doc = OpenApiV3Document(p.substr(std::string("/openapi/v3/").size()));
    if (!doc) return ErrorResponse(NotFoundPath(p));
    return JsonResponse(200, *doc);
  }
  if (absl::StartsWith(p, "/openapi/")) return ErrorResponse(NotFoundPath(p));
  std::vector<std::string> seg = absl::StrSplit(p, '/', absl::SkipEmpty());
  if (seg.size() == 2 && seg[0] == "api") {
    auto list = ApiResourceList("", seg[1]);
    return list ? JsonResponse(200, *list) : ErrorResponse(NotFoundPath(p));
  }
  if (seg.size() == 2 && seg[0] == "apis") {
    auto group = ApiGroup(seg[1]);
    return group ? JsonResponse(200, *group) : ErrorResponse(NotFoundPath(p));
  }
  if (seg.size() == 3 && seg[0] == "apis") {
    auto list = ApiResourceList(seg[1], seg[2]);
    return list ? JsonResponse(200, *list) : ErrorResponse(NotFoundPath(p));
  }
  return std::nullopt;
}

std::optional<std::variant<ApiHandler::Route, ApiError>> ApiHandler::ParseRoute(
    const std::string& path) const {
  std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
  std::string group, version;
  size_t i = 0;
  if (seg.size() >= 3 && seg[0] == "api") {
    version = seg[1];
    i = 2;
  } else if (seg.size() >= 4 && seg[0] == "apis") {
    group = seg[1];
    version = seg[2];
    i = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(seg.begin() + i, seg.end());
  Route route;
  // namespaces/<ns>/<plural>/... unless it is the namespace object itself
  // (namespaces/<name> or namespaces/<name>/status).
  if (rest.size() >= 3 && rest[0] == "namespaces" && group.empty() == false) {
    route.namespace_name = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  } else if (rest.size() >= 3 && rest[0] == "namespaces" && rest[2] != "status" &&
             rest[2] != "finalize") {
    route.namespace_name = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.empty() || rest.size() > 3) return std::nullopt;
  route.type = FindResourceType(group, version, rest[0]);
  if (route.type == nullptr) return std::nullopt;
  if (!route.type->namespaced && !route.namespace_name.empty()) return std::nullopt;
  if (rest.size() >= 2) route.name = rest[1];
  if (rest.size() == 3) {
    route.subresource = rest[2];
    if (!route.type->HasSubresource(route.subresource)) return std::nullopt;
  }
  return route;
}

HttpResponse ApiHandler::Handle(const HttpRequest& request) {
  // Hooks index into client-supplied JSON; a shape they did not expect must
  // fail this request, never the process.
  try {
    return HandleUnchecked(request);
  } catch (const std::exception& e) {
    spdlog::warn("event=api_request_failed method={} path={} error=\"{}\"", request.method,
                 request.path, e.what());
    return ErrorResponse(BadRequest(absl::StrCat("the object could not be processed: ", e.what())));
  }
}

HttpResponse ApiHandler::HandleUnchecked(const HttpRequest& request) {
  if (auto r = HandleNonResource(request)) return *r;
  auto parsed = ParseRoute(request.path);
  if (!parsed) return ErrorResponse(NotFoundPath(request.path));
  if (auto* e = std::get_if<ApiError>(&*parsed)) return ErrorResponse(*e);
  const Route& route = std::get<Route>(*parsed);
  if (absl::StrContains(request.accept, "application/vnd.kubernetes.protobuf") &&
      !absl::StrContains(request.accept, "json") && !absl::StrContains(request.accept, "*/*")) {
    return ErrorResponse(NotAcceptable());
  }
  std::vector<std::string> warnings;
  Result result = [&]() -> Result {
    const std::string& m = request.method;
    if (route.subresource == "binding") {
      if (m == "POST") return CreateBinding(route, request);
      return MethodNotSupported("bindings", m);
    }
    if (route.subresource == "log") {
      if (m == "GET") return Log(route, request);
      return MethodNotSupported("pods/log", m);
    }
    if (route.name.empty()) {
      if (m == "GET") return List(route, request);
      if (m == "POST") return Create(route, request, warnings);
      if (m == "DELETE") return DeleteCollection(route, request);
      return MethodNotSupported(route.type->plural, m);
    }
    if (m == "GET") return Get(route, request);
    if (m == "PUT") return Update(route, request, warnings);
    if (m == "PATCH") return Patch(route, request, warnings);
    if (m == "DELETE" && route.subresource.empty()) return Delete(route, request);
    if (m == "POST")
      return Create(route, request, warnings);  // POST to a name: Kubernetes says 405
    return MethodNotSupported(route.type->plural, m);
  }();
  HttpResponse response = std::holds_alternative<ApiError>(result)
                              ? ErrorResponse(std::get<ApiError>(result))
                              : std::get<HttpResponse>(std::move(result));
  response.warnings = std::move(warnings);
  return response;
}

// --- scale ---

namespace {

Json ScaleOf(const Json& o) {
  Json meta = o.value("metadata", Json::object());
  Json scale_meta = {{"name", meta.value("name", "")},
                     {"namespace", meta.value("namespace", "")},
                     {"uid", meta.value("uid", "")},
                     {"resourceVersion", meta.value("resourceVersion", "")},
                     {"creationTimestamp", meta.value("creationTimestamp", Json())}};
  std::string selector;
  if (const Json* ml = Find(o, {"spec", "selector", "matchLabels"}); ml && ml->is_object()) {
    for (auto& [k, v] : ml->items()) {
      absl::StrAppend(&selector, selector.empty() ? "" : ",", k, "=",
                      v.is_string() ? v.get<std::string>() : "");
    }
  }
  const Json* status = Find(o, {"status"});
  return {
      {"kind", "Scale"},
      {"apiVersion", "autoscaling/v1"},
      {"metadata", scale_meta},
      {"spec", {{"replicas", IntAt(o.value("spec", Json::object()), "replicas", 1)}}},
      {"status", {{"replicas", status ? IntAt(*status, "replicas") : 0}, {"selector", selector}}}};
}

}  // namespace

ApiHandler::Result ApiHandler::Get(const Route& route, const HttpRequest& request) {
  auto stored = store_.Get(KeyFor(*route.type, route.namespace_name, route.name));
  if (!stored.ok()) return FromStore(stored.status(), *route.type, route.name);
  Json o = Decode(*stored);
  if (route.subresource == "scale") return JsonResponse(200, ScaleOf(o));
  if (WantsTable(request) && route.subresource.empty()) {
    IncludeObject include = IncludeObject::kMetadata;
    if (auto it = request.query.find("includeObject"); it != request.query.end()) {
      if (it->second == "Object") include = IncludeObject::kObject;
      if (it->second == "None") include = IncludeObject::kNone;
    }
    return JsonResponse(
        200, ToTable(*route.type, {o}, include, true, absl::StrCat(stored->mod_revision), ""));
  }
  return JsonResponse(200, o);
}

ApiHandler::Result ApiHandler::List(const Route& route, const HttpRequest& request) {
  const ResourceType& type = *route.type;
  auto q = [&](const char* k) {
    auto it = request.query.find(k);
    return it == request.query.end() ? std::string() : it->second;
  };
  auto labels = LabelSelector::Parse(q("labelSelector"));
  if (!labels.ok()) return BadRequest(std::string(labels.status().message()));
  auto fields = FieldSelector::Parse(q("fieldSelector"), type);
  if (!fields.ok()) return BadRequest(std::string(fields.status().message()));
  int64_t limit = 0;
  if (!q("limit").empty() && (!absl::SimpleAtoi(q("limit"), &limit) || limit < 0)) {
    return BadRequest("invalid limit");
  }
  const std::string prefix = PrefixFor(type, route.namespace_name);
  std::string start_key;
  int64_t revision = 0;
  if (!q("continue").empty()) {
    auto token = DecodeContinue(q("continue"));
    if (!token || !absl::StartsWith(token->start_key, prefix)) {
      return BadRequest("continue key is not valid: invalid continue token");
    }
    revision = token->revision;
    start_key = token->start_key;
  }
  std::vector<Json> items;
  // A plain list is spliced from the stored text, not parsed and re-encoded:
  // it is the largest response the API gives (every object of a kind).
  const bool filtered = !labels->empty() || !fields->empty();
  const bool raw = !filtered && !WantsTable(request);
  std::vector<std::string> raw_items;
  auto count = [&] { return static_cast<int64_t>(raw ? raw_items.size() : items.size()); };
  int64_t list_revision = 0;
  std::string continue_token;
  int64_t remaining = -1;
  // Selectors are applied here, so a limited list may need several pages.
  while (true) {
    const int64_t page_size =
        limit == 0 ? (filtered ? kScanPageObjectsMax : 0)
                   : (filtered ? std::max<int64_t>(limit, kScanPageObjectsMax) : limit - count());
    auto page = store_.List(prefix, start_key, page_size, revision);
    if (!page.ok()) {
      if (absl::IsOutOfRange(page.status()) && revision != 0) {
        return Expired(
            "The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter, or use the continue "
            "token in this response to retrieve the remainder of the results. Continuing with "
            "the provided token results in an inconsistent list - objects that were created, "
            "modified, or deleted between the time the first chunk was returned and now may "
            "show up in the list.");
      }
      return FromStore(page.status(), type, "");
    }
    if (revision == 0) revision = page->revision;
    list_revision = revision;
    bool stopped_early = false;
    for (size_t i = 0; i < page->items.size(); ++i) {
      const StoredObject& s = page->items[i];
      if (raw) {
        raw_items.push_back(EncodeStored(s));
        start_key = s.key + '\0';
        if (limit != 0 && count() >= limit) {
          stopped_early = i + 1 < page->items.size() || page->more;
          if (page->more) remaining = page->remaining + (page->items.size() - i - 1);
          break;
        }
        continue;
      }
      Json o = Decode(s);
      if (filtered &&
          (!labels->Matches(Find(o, {"metadata", "labels"})) || !fields->Matches(type, o))) {
        start_key = s.key + '\0';
        continue;
      }
      items.push_back(std::move(o));
      start_key = s.key + '\0';
      if (limit != 0 && count() >= limit) {
        stopped_early = i + 1 < page->items.size() || page->more;
        if (!filtered && page->more) remaining = page->remaining;
        break;
      }
    }
    if (stopped_early) {
      continue_token = EncodeContinue(revision, start_key);
      break;
    }
    if (!page->more) break;
    if (limit == 0 && !filtered) break;  // unreachable: an unlimited read has no more
  }
  const std::string rv = absl::StrCat(list_revision);
  if (WantsTable(request)) {
    IncludeObject include = IncludeObject::kMetadata;
    if (q("includeObject") == "Object") include = IncludeObject::kObject;
    if (q("includeObject") == "None") include = IncludeObject::kNone;
    return JsonResponse(200, ToTable(type, items, include, true, rv, continue_token));
  }
  Json meta = {{"resourceVersion", rv}};
  if (!continue_token.empty()) meta["continue"] = continue_token;
  if (remaining > 0) meta["remainingItemCount"] = remaining;
  if (raw) {
    std::string body =
        absl::StrCat(R"({"apiVersion":")", type.ApiVersion(), R"(","kind":")", type.ListKind(),
                     R"(","metadata":)", meta.dump(), R"(,"items":[)");
    for (size_t i = 0; i < raw_items.size(); ++i) {
      if (i) body.push_back(',');
      body += raw_items[i];
    }
    body += "]}";
    return HttpResponse{200, "application/json", std::move(body), {}};
  }
  Json list = {{"kind", type.ListKind()},
               {"apiVersion", type.ApiVersion()},
               {"metadata", meta},
               {"items", std::move(items)}};
  return JsonResponse(200, list);
}

namespace {

std::variant<Json, ApiError> ParseBody(const std::string& body) {
  Json o = Json::parse(body, nullptr, false);
  if (o.is_discarded()) {
    return BadRequest("the body of the request could not be decoded as JSON");
  }
  return o;
}

// Finds the keys a JSON text repeats within one object (the parser keeps the
// last), as paths in Kubernetes' notation ("spec.replicas", "items[0].name").
class DuplicateFieldFinder {
 public:
  std::vector<std::string> duplicates;

  bool null() { return Value(); }
  bool boolean(bool) { return Value(); }
  bool number_integer(Json::number_integer_t) { return Value(); }
  bool number_unsigned(Json::number_unsigned_t) { return Value(); }
  bool number_float(Json::number_float_t, const std::string&) { return Value(); }
  bool string(std::string&) { return Value(); }
  bool binary(Json::binary_t&) { return Value(); }
  bool start_object(size_t) {
    stack_.push_back(Frame{false, 0, {}, {}});
    return true;
  }
  bool key(std::string& key) {
    Frame& f = stack_.back();
    f.key = key;
    if (!f.keys.insert(key).second && duplicates.size() < kUnknownFieldsReportedMax) {
      duplicates.push_back(Path());
    }
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return Value();
  }
  bool start_array(size_t) {
    stack_.push_back(Frame{true, 0, {}, {}});
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return Value();
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  struct Frame {
    bool array;
    size_t index;  // of the element being read, in an array
    std::string key;
    std::set<std::string> keys;
  };
  bool Value() {
    if (!stack_.empty() && stack_.back().array) ++stack_.back().index;
    return true;
  }
  std::string Path() const {
    std::string path;
    for (const Frame& f : stack_) {
      if (f.array) {
        absl::StrAppend(&path, "[", f.index, "]");
      } else {
        absl::StrAppend(&path, path.empty() ? "" : ".", f.key);
      }
    }
    return path;
  }
  std::vector<Frame> stack_;
};

struct ParsedBody {
  Json object;
  std::vector<std::string> duplicate_fields;
};

// A create or update body: JSON, or the protobuf kubectl's typed clients send.
std::variant<ParsedBody, ApiError> ParseObjectBody(const HttpRequest& request) {
  if (absl::StartsWith(request.content_type, kProtobufContentType)) {
    auto decoded = DecodeProtobufObject(request.body);
    if (decoded.ok()) return ParsedBody{*std::move(decoded), {}};
    if (absl::IsUnimplemented(decoded.status())) {
      return ApiError{415,
                      "UnsupportedMediaType",
                      absl::StrCat(decoded.status().message(),
                                   "; this server accepts application/json (use a manifest: "
                                   "kubectl create -f)"),
                      {}};
    }
    return BadRequest(std::string(decoded.status().message()));
  }
  auto parsed = ParseBody(request.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  DuplicateFieldFinder finder;
  Json::sax_parse(request.body, &finder);
  return ParsedBody{std::get<Json>(std::move(parsed)), std::move(finder.duplicates)};
}

}  // namespace

ApiHandler::Result ApiHandler::Create(const Route& route, const HttpRequest& request,
                                      std::vector<std::string>& warnings) {
  const ResourceType& type = *route.type;
  if (!route.name.empty()) return MethodNotSupported(type.plural, "POST");
  auto parsed = ParseObjectBody(request);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  Json o = std::get<ParsedBody>(parsed).object;
  if (!o.is_object()) return BadRequest("the body of the request must be a JSON object");
  if (auto strict = ApplyFieldValidation(type, o, request,
                                         std::get<ParsedBody>(parsed).duplicate_fields, warnings)) {
    return *strict;
  }
  if (o.contains("kind") && o["kind"] != type.kind) {
    return BadRequest(absl::StrCat("the kind of the object (", o["kind"].dump(),
                                   ") does not match the resource (", type.kind, ")"));
  }
  if (o.contains("apiVersion") && o["apiVersion"] != type.ApiVersion()) {
    return BadRequest(absl::StrCat("the API version in the data (", o["apiVersion"].dump(),
                                   ") does not match the expected API version (", type.ApiVersion(),
                                   ")"));
  }
  o["kind"] = type.kind;
  o["apiVersion"] = type.ApiVersion();
  if (!o.contains("metadata") || !o["metadata"].is_object()) o["metadata"] = Json::object();
  Json& meta = o["metadata"];
  if (type.namespaced) {
    const std::string body_ns = MetaString(o, "namespace");
    if (route.namespace_name.empty()) {
      return BadRequest("a namespaced object must be created within a namespace");
    }
    if (!body_ns.empty() && body_ns != route.namespace_name) {
      return BadRequest(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    }
    meta["namespace"] = route.namespace_name;
  } else {
    meta.erase("namespace");
  }
  if (!MetaString(o, "resourceVersion").empty()) {
    return BadRequest("resourceVersion should not be set on objects to be created");
  }
  if (MetaString(o, "name").empty() && !MetaString(o, "generateName").empty()) {
    meta["name"] = MetaString(o, "generateName") + RandomSuffix();
  }
  const std::string name = MetaString(o, "name");
  meta["uid"] = NewUid();
  meta["creationTimestamp"] = NowRfc3339();
  meta["generation"] = 1;
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  meta.erase("managedFields");
  meta.erase("selfLink");
  if (type.HasSubresource("status") && type.kind != "Namespace" && type.kind != "Node") {
    o.erase("status");
  }
  type.set_defaults(o);
  FieldErrors errors = type.validate(o, nullptr);
  if (!errors.empty()) return Invalid(type, name, errors);
  if (type.namespaced) {
    const ResourceType* ns_type = FindResourceType("", "v1", "namespaces");
    auto ns = store_.Get(KeyFor(*ns_type, "", route.namespace_name));
    if (!ns.ok()) return FromStore(ns.status(), *ns_type, route.namespace_name);
    if (Find(Decode(*ns), {"metadata", "deletionTimestamp"})) {
      return Forbidden(type, name,
                       absl::StrCat("unable to create new content in namespace ",
                                    route.namespace_name, " because it is being terminated"));
    }
  }
  if (request.query.count("dryRun")) return JsonResponse(201, o);
  std::string reserved_ip_key;
  if (type.kind == "Service") {
    auto ip = AllocateClusterIp(o);
    if (auto* e = std::get_if<ApiError>(&ip)) return *e;
    reserved_ip_key = std::get<std::string>(ip);
  }
  auto revision = store_.Create(KeyFor(type, route.namespace_name, name), o.dump());
  if (!revision.ok()) {
    ReleaseClusterIp(reserved_ip_key);
    return FromStore(revision.status(), type, name);
  }
  meta["resourceVersion"] = absl::StrCat(*revision);
  return JsonResponse(201, o);
}

std::variant<std::string, ApiError> ApiHandler::AllocateClusterIp(Json& service) {
  Json& spec = service["spec"];
  const std::string type = StringAt(spec, "type");
  const std::string wanted = StringAt(spec, "clusterIP");
  const std::string name = MetaString(service, "name");
  if (type == "ExternalName" || wanted == "None") {
    if (wanted == "None") spec["clusterIPs"] = Json::array({"None"});
    return std::string();
  }
  // One key per address, created only if absent: two services can never
  // hold the same address, whichever members their creates went through.
  auto reserve = [&](const std::string& ip) -> absl::StatusOr<std::string> {
    const std::string key = absl::StrCat(kRegistryPrefix, "serviceips/", ip);
    auto created = store_.Create(key, Json{{"service", name}}.dump());
    if (!created.ok()) return created.status();
    return key;
  };
  const ResourceType& services = *FindResourceType("", "v1", "services");
  if (!wanted.empty()) {
    auto key = reserve(wanted);
    if (absl::IsAlreadyExists(key.status())) {
      return Invalid(services, name,
                     {{"FieldValueInvalid", "spec.clusterIPs",
                       absl::StrCat("Invalid value: [\"", wanted, "\"]: failed to allocate IP ",
                                    wanted, ": provided IP is already allocated")}});
    }
    if (!key.ok()) return FromStore(key.status(), services, name);
    spec["clusterIPs"] = Json::array({wanted});
    return *key;
  }
  for (int attempt = 0; attempt < kClusterIpAttemptsMax; ++attempt) {
    uint64_t offset;
    {
      std::lock_guard<std::mutex> lock(random_mu_);
      offset = random_() % kClusterIpRangeSize;
    }
    if (offset < 2) continue;  // the network address and the first service's
    const uint32_t address = kClusterIpRangeBase + static_cast<uint32_t>(offset);
    const std::string ip = absl::StrCat(address >> 24, ".", (address >> 16) & 0xff, ".",
                                        (address >> 8) & 0xff, ".", address & 0xff);
    auto key = reserve(ip);
    if (absl::IsAlreadyExists(key.status())) continue;
    if (!key.ok()) return FromStore(key.status(), services, name);
    spec["clusterIP"] = ip;
    spec["clusterIPs"] = Json::array({ip});
    return *key;
  }
  return ApiError{500,
                  "InternalError",
                  "Internal error occurred: failed to allocate a serviceIP: range is full",
                  {}};
}

void ApiHandler::ReleaseClusterIp(const std::string& key) {
  if (key.empty()) return;
  auto stored = store_.Get(key);
  if (stored.ok()) (void)store_.Delete(key, stored->mod_revision);
}

std::variant<Json, ApiError> ApiHandler::Store(const ResourceType& type, Json o, const Json& old,
                                               int64_t old_revision) {
  const std::string name = MetaString(old, "name");
  if (!o.is_object()) return BadRequest("the object must be a JSON object");
  o["kind"] = type.kind;
  o["apiVersion"] = type.ApiVersion();
  if (!o.contains("metadata") || !o["metadata"].is_object()) o["metadata"] = Json::object();
  Json& meta = o["metadata"];
  if (!MetaString(o, "name").empty() && MetaString(o, "name") != name) {
    return BadRequest(absl::StrCat("the name of the object (", MetaString(o, "name"),
                                   ") does not match the name on the URL (", name, ")"));
  }
  const std::string body_ns = MetaString(o, "namespace");
  if (type.namespaced && !body_ns.empty() && body_ns != MetaString(old, "namespace")) {
    return BadRequest(
        "the namespace of the provided object does not match the namespace sent on the "
        "request");
  }
  const std::string rv = MetaString(o, "resourceVersion");
  if (!rv.empty() && rv != absl::StrCat(old_revision)) {
    return Conflict(type, name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again");
  }
  // What the server owns is kept from the stored object.
  const Json& old_meta = old["metadata"];
  meta["name"] = name;
  if (type.namespaced) meta["namespace"] = old_meta.value("namespace", "");
  for (const char* f : {"uid", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "generation"}) {
    if (old_meta.contains(f)) {
      meta[f] = old_meta[f];
    } else {
      meta.erase(f);
    }
  }
  meta.erase("resourceVersion");
  meta.erase("managedFields");
  if (type.kind == "Service" && o.contains("spec") && o["spec"].is_object()) {
    // An update that leaves the allocated address out keeps it.
    for (const char* f : {"clusterIP", "clusterIPs"}) {
      if (!o["spec"].contains(f) && Find(old, {"spec", f})) o["spec"][f] = old["spec"][f];
    }
  }
  type.set_defaults(o);
  if (SpecPart(o) != SpecPart(old)) meta["generation"] = IntAt(old_meta, "generation", 1) + 1;
  FieldErrors errors = type.validate(o, &old);
  if (!errors.empty()) return Invalid(type, name, errors);
  Json old_cmp = Comparable(old);
  if (Comparable(o) == old_cmp) {
    o["metadata"]["resourceVersion"] = absl::StrCat(old_revision);
    return o;  // a no-op write changes nothing, not even the revision
  }
  const std::string key = KeyFor(type, MetaString(old, "namespace"), name);
  // An object being deleted goes once its last finalizer is removed; a pod
  // on a node also waits for its agent to confirm (deletionGracePeriodSeconds 0).
  const Json* finalizers = Find(o, {"metadata", "finalizers"});
  const bool awaiting_agent = type.kind == "Pod" && Find(o, {"spec", "nodeName"}) &&
                              IntAt(meta, "deletionGracePeriodSeconds", 0) > 0;
  if (meta.contains("deletionTimestamp") && !awaiting_agent &&
      (finalizers == nullptr || !finalizers->is_array() || finalizers->empty())) {
    auto deleted = store_.Delete(key, old_revision);
    if (!deleted.ok()) return FromStore(deleted.status(), type, name);
    meta["resourceVersion"] = absl::StrCat(*deleted);
    return o;
  }
  auto revision = store_.Update(key, o.dump(), old_revision);
  if (!revision.ok()) return FromStore(revision.status(), type, name);
  meta["resourceVersion"] = absl::StrCat(*revision);
  return o;
}

ApiHandler::Result ApiHandler::ReadModifyWrite(const Route& route, const Mutation& mutate,
                                               int success_code) {
  const ResourceType& type = *route.type;
  const std::string key = KeyFor(type, route.namespace_name, route.name);
  ApiError last;
  for (int attempt = 0; attempt < kConflictRetriesMax; ++attempt) {
    auto stored = store_.Get(key);
    if (!stored.ok()) return FromStore(stored.status(), type, route.name);
    const Json current = Decode(*stored);
    auto next = mutate(current);
    if (auto* e = std::get_if<ApiError>(&next)) return *e;
    auto written = Store(type, std::get<Json>(std::move(next)), current, stored->mod_revision);
    if (auto* o = std::get_if<Json>(&written)) {
      if (route.subresource == "scale") return JsonResponse(success_code, ScaleOf(*o));
      return JsonResponse(success_code, *o);
    }
    last = std::get<ApiError>(written);
    if (last.reason != "Conflict") return last;
  }
  return last;
}

namespace {

// The subresource rules: a status write changes only status; a main write
// keeps the stored status for types whose status has its own endpoint.
Json MergeForSubresource(const ResourceType& type, const std::string& subresource,
                         const Json& current, Json next) {
  if (subresource == "status") {
    Json out = current;
    if (next.contains("status")) {
      out["status"] = next["status"];
    } else {
      out.erase("status");
    }
    if (next.contains("metadata") && next["metadata"].contains("resourceVersion")) {
      out["metadata"]["resourceVersion"] = next["metadata"]["resourceVersion"];
    }
    return out;
  }
  if (subresource.empty() && type.HasSubresource("status")) {
    if (current.contains("status")) {
      next["status"] = current["status"];
    } else {
      next.erase("status");
    }
  }
  return next;
}

}  // namespace

ApiHandler::Result ApiHandler::Update(const Route& route, const HttpRequest& request,
                                      std::vector<std::string>& warnings) {
  auto parsed = ParseObjectBody(request);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  Json body = std::get<ParsedBody>(parsed).object;
  if (!body.is_object()) return BadRequest("the body of the request must be a JSON object");
  const std::vector<std::string>& duplicates = std::get<ParsedBody>(parsed).duplicate_fields;
  if (auto strict = route.subresource == "scale"
                        ? ApplyScaleFieldValidation(body, request, duplicates, warnings)
                        : ApplyFieldValidation(*route.type, body, request, duplicates, warnings)) {
    return *strict;
  }
  const bool pinned = !MetaString(body, "resourceVersion").empty();
  Mutation mutate = [&](const Json& current) -> std::variant<Json, ApiError> {
    if (route.subresource == "scale") {
      Json next = current;
      const Json* replicas = Find(body, {"spec", "replicas"});
      if (!replicas || !replicas->is_number_integer()) {
        return Invalid(*route.type, route.name,
                       {{"FieldValueRequired", "spec.replicas", "Required value"}});
      }
      next["spec"]["replicas"] = *replicas;
      if (pinned) next["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"];
      return next;
    }
    return MergeForSubresource(*route.type, route.subresource, current, body);
  };
  if (pinned) {
    // A pinned write is attempted once: a conflict belongs to the client.
    const std::string key = KeyFor(*route.type, route.namespace_name, route.name);
    auto stored = store_.Get(key);
    if (!stored.ok()) return FromStore(stored.status(), *route.type, route.name);
    const Json current = Decode(*stored);
    auto next = mutate(current);
    if (auto* e = std::get_if<ApiError>(&next)) return *e;
    auto written =
        Store(*route.type, std::get<Json>(std::move(next)), current, stored->mod_revision);
    if (auto* e = std::get_if<ApiError>(&written)) return *e;
    const Json& o = std::get<Json>(written);
    return JsonResponse(200, route.subresource == "scale" ? ScaleOf(o) : o);
  }
  return ReadModifyWrite(route, mutate);
}

ApiHandler::Result ApiHandler::Patch(const Route& route, const HttpRequest& request,
                                     std::vector<std::string>& warnings) {
  auto parsed = ParseBody(request.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const Json patch = std::get<Json>(std::move(parsed));
  const std::string content_type = request.content_type.substr(0, request.content_type.find(';'));
  const ResourceType& type = *route.type;
  Mutation mutate = [&](const Json& current) -> std::variant<Json, ApiError> {
    const Json document = route.subresource == "scale" ? ScaleOf(current) : current;
    absl::StatusOr<Json> patched;
    if (content_type == "application/json-patch+json") {
      patched = ApplyJsonPatch(document, patch);
    } else if (content_type == "application/merge-patch+json") {
      patched = ApplyMergePatch(document, patch);
    } else if (content_type == "application/strategic-merge-patch+json") {
      patched = ApplyStrategicMergePatch(document, patch,
                                         route.subresource == "scale" ? "Scale" : type.kind);
    } else {
      return UnsupportedMediaType(request.content_type);
    }
    if (!patched.ok()) return BadRequest(std::string(patched.status().message()));
    // A retry after a conflict judges the patched object afresh.
    std::vector<std::string> round_warnings;
    if (auto strict = route.subresource == "scale"
                          ? ApplyScaleFieldValidation(*patched, request, {}, round_warnings)
                          : ApplyFieldValidation(type, *patched, request, {}, round_warnings)) {
      return *strict;
    }
    warnings = std::move(round_warnings);
    if (route.subresource == "scale") {
      Json next = current;
      const Json* replicas = Find(*patched, {"spec", "replicas"});
      if (!replicas || !replicas->is_number_integer()) {
        return Invalid(type, route.name,
                       {{"FieldValueRequired", "spec.replicas", "Required value"}});
      }
      next["spec"]["replicas"] = *replicas;
      const std::string rv = MetaString(*patched, "resourceVersion");
      if (!rv.empty()) next["metadata"]["resourceVersion"] = rv;
      return next;
    }
    return MergeForSubresource(type, route.subresource, current, *std::move(patched));
  };
  return ReadModifyWrite(route, mutate);
}

ApiHandler::Result ApiHandler::CreateBinding(const Route& route, const HttpRequest& request) {
  auto parsed = ParseObjectBody(request);  // a scheduler's client may send protobuf
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const Json binding = std::get<ParsedBody>(std::move(parsed)).object;
  const std::string node = StringAt(binding.value("target", Json::object()), "name");
  if (node.empty()) {
    return Invalid(*route.type, route.name,
                   {{"FieldValueRequired", "target.name", "Required value"}});
  }
  Route pod_route = route;
  pod_route.subresource.clear();
  // A binding names the pod it was decided for: a pod replaced under the
  // same name since then is not bound by it.
  const std::string want_uid = StringAt(binding.value("metadata", Json::object()), "uid");
  Mutation mutate = [&](const Json& current) -> std::variant<Json, ApiError> {
    const std::string uid = MetaString(current, "uid");
    if (!want_uid.empty() && want_uid != uid) {
      return Conflict(*route.type, route.name,
                      absl::StrCat("Precondition failed: UID in precondition: ", want_uid,
                                   ", UID in object meta: ", uid));
    }
    if (Find(current, {"metadata", "deletionTimestamp"})) {
      return Conflict(
          *route.type, route.name,
          absl::StrCat("pod ", route.name, " is being deleted, cannot be assigned to a host"));
    }
    const Json* bound = Find(current, {"spec", "nodeName"});
    if (bound && bound->is_string() && !bound->get<std::string>().empty()) {
      return Conflict(*route.type, route.name,
                      absl::StrCat("pod ", route.name, " is already assigned to node \"",
                                   bound->get<std::string>(), "\""));
    }
    Json next = current;
    next["spec"]["nodeName"] = node;
    // Bound means scheduled: PodScheduled turns True (replacing Unschedulable).
    Json scheduled = {{"type", "PodScheduled"},
                      {"status", "True"},
                      {"lastProbeTime", nullptr},
                      {"lastTransitionTime", NowRfc3339()}};
    Json& conditions = next["status"]["conditions"];
    if (!conditions.is_array()) conditions = Json::array();
    bool replaced = false;
    for (Json& c : conditions) {
      if (StringAt(c, "type") == "PodScheduled") {
        c = scheduled;
        replaced = true;
      }
    }
    if (!replaced) conditions.push_back(scheduled);
    return next;
  };
  auto result = ReadModifyWrite(pod_route, mutate, 201);
  if (auto* e = std::get_if<ApiError>(&result)) return *e;
  return JsonResponse(201, {{"kind", "Status"},
                            {"apiVersion", "v1"},
                            {"metadata", Json::object()},
                            {"status", "Success"},
                            {"code", 201}});
}

std::variant<LogTarget, ApiError> ApiHandler::ResolveLog(const Route& route,
                                                         const HttpRequest& request) {
  auto stored = store_.Get(KeyFor(*route.type, route.namespace_name, route.name));
  if (!stored.ok()) return FromStore(stored.status(), *route.type, route.name);
  const Json pod = Decode(*stored);
  const Json* bound = Find(pod, {"spec", "nodeName"});
  std::optional<Json> node;
  if (bound && bound->is_string() && !bound->get<std::string>().empty()) {
    const ResourceType* nodes = FindResourceType("", "v1", "nodes");
    if (auto n = store_.Get(KeyFor(*nodes, "", bound->get<std::string>())); n.ok()) {
      node = Decode(*n);
    }
  }
  return ResolveLogTarget(pod, node ? &*node : nullptr, request.query);
}

ApiHandler::Result ApiHandler::Log(const Route& route, const HttpRequest& request) {
  auto target = ResolveLog(route, request);
  if (auto* e = std::get_if<ApiError>(&target)) return *e;
  // A follow reaching here (not through the HTTP server) gets what there is now.
  LogTarget t = std::get<LogTarget>(target);
  if (t.follow) {
    HttpRequest without = request;
    without.query.erase("follow");
    auto again = ResolveLog(route, without);
    if (auto* e = std::get_if<ApiError>(&again)) return *e;
    t = std::get<LogTarget>(again);
  }
  return FetchLogs(t, kLogFetchTimeout);
}

std::optional<std::variant<LogTarget, HttpResponse>> ApiHandler::PlanLogStream(
    const HttpRequest& request) {
  auto follow = request.query.find("follow");
  if (request.method != "GET" || follow == request.query.end() ||
      (follow->second != "true" && follow->second != "1")) {
    return std::nullopt;
  }
  auto parsed = ParseRoute(request.path);
  if (!parsed || !std::holds_alternative<Route>(*parsed)) return std::nullopt;
  const Route& route = std::get<Route>(*parsed);
  if (route.subresource != "log") return std::nullopt;
  auto target = ResolveLog(route, request);
  if (auto* e = std::get_if<ApiError>(&target)) return ErrorResponse(*e);
  return std::get<LogTarget>(target);
}

std::vector<std::pair<const ResourceType*, StoredObject>> ApiHandler::Dependents(
    const std::string& namespace_name, const std::string& owner_uid) {
  std::vector<std::pair<const ResourceType*, StoredObject>> out;
  // The kinds controllers create on behalf of an owner.
  for (const char* plural : {"replicasets", "pods", "controllerrevisions"}) {
    const ResourceType* type =
        FindResourceType(std::string(plural) == "pods" ? "" : "apps", "v1", plural);
    std::string start;
    while (true) {
      auto page = store_.List(PrefixFor(*type, namespace_name), start, kScanPageObjectsMax, 0);
      if (!page.ok()) break;
      for (const StoredObject& s : page->items) {
        // A cheap filter before parsing: the uid must appear in the text.
        if (s.value.find(owner_uid) == std::string::npos) continue;
        Json o = Json::parse(s.value, nullptr, false);
        const Json* refs = Find(o, {"metadata", "ownerReferences"});
        if (!refs || !refs->is_array()) continue;
        for (const Json& r : *refs) {
          if (StringAt(r, "uid") == owner_uid) {
            out.push_back({type, s});
            break;
          }
        }
      }
      if (!page->more || page->items.empty()) break;
      start = page->items.back().key + '\0';
    }
  }
  return out;
}

std::variant<Json, ApiError> ApiHandler::DeleteObject(const ResourceType& type,
                                                      const std::string& key,
                                                      const std::string& propagation,
                                                      std::optional<int64_t> grace_seconds,
                                                      const Json& preconditions) {
  static thread_local int depth = 0;
  struct DepthGuard {
    DepthGuard() { ++depth; }
    ~DepthGuard() { --depth; }
  } guard;
  const std::string name = key.substr(key.rfind('/') + 1);
  for (int attempt = 0; attempt < kConflictRetriesMax; ++attempt) {
    auto stored = store_.Get(key);
    if (!stored.ok()) return FromStore(stored.status(), type, name);
    Json o = Decode(*stored);
    const std::string uid = MetaString(o, "uid");
    const std::string ns = MetaString(o, "namespace");
    if (preconditions.is_object()) {
      const std::string want_uid = StringAt(preconditions, "uid");
      const std::string want_rv = StringAt(preconditions, "resourceVersion");
      if (!want_uid.empty() && want_uid != uid) {
        return Conflict(type, name,
                        absl::StrCat("Precondition failed: UID in precondition: ", want_uid,
                                     ", UID in object meta: ", uid));
      }
      if (!want_rv.empty() && want_rv != absl::StrCat(stored->mod_revision)) {
        return Conflict(
            type, name,
            absl::StrCat("Precondition failed: ResourceVersion in precondition: ", want_rv,
                         ", ResourceVersion in object meta: ", stored->mod_revision));
      }
    }
    if (type.kind == "Namespace") {
      if (std::find(kDefaultNamespaces.begin(), kDefaultNamespaces.end(), name) !=
              kDefaultNamespaces.end() &&
          name != "kube-node-lease") {
        return Forbidden(type, name, "this namespace may not be deleted");
      }
      // Mark it Terminating, delete its contents, then the namespace itself.
      if (!o["metadata"].contains("deletionTimestamp")) {
        Json marked = o;
        marked["metadata"]["deletionTimestamp"] = NowRfc3339();
        marked["metadata"]["deletionGracePeriodSeconds"] = 0;
        marked["status"]["phase"] = "Terminating";
        marked["metadata"].erase("resourceVersion");
        auto updated = store_.Update(key, marked.dump(), stored->mod_revision);
        if (!updated.ok()) {
          if (absl::IsAborted(updated.status())) continue;
          return FromStore(updated.status(), type, name);
        }
        o = marked;
        o["metadata"]["resourceVersion"] = absl::StrCat(*updated);
      }
      for (const ResourceType& t : AllResourceTypes()) {
        if (!t.namespaced) continue;
        std::string start;
        while (true) {
          auto page = store_.List(PrefixFor(t, name), start, kScanPageObjectsMax, 0);
          if (!page.ok() || page->items.empty()) break;
          for (const StoredObject& s : page->items) {
            (void)DeleteObject(t, s.key, "Background", 0, Json());
          }
          if (!page->more) break;
          start = page->items.back().key + '\0';
        }
      }
      auto final_rev = store_.Get(key);
      if (final_rev.ok()) (void)store_.Delete(key, final_rev->mod_revision);
      return o;
    }
    Json finalizers = o["metadata"].value("finalizers", Json::array());
    if (o["metadata"].contains("deletionTimestamp")) {
      // A pod's node agent (or a forced delete) confirms with a zero grace
      // period once its processes are gone; anything else waits for the
      // object's last finalizer.
      if (type.kind != "Pod" || grace_seconds != int64_t{0}) return o;
      if (!finalizers.empty()) {
        // Confirmed, but held by finalizers: it goes with the last of them.
        if (IntAt(o["metadata"], "deletionGracePeriodSeconds", 0) == 0) return o;
        Json confirmed = o;
        confirmed["metadata"]["deletionGracePeriodSeconds"] = 0;
        confirmed["metadata"].erase("resourceVersion");
        auto updated = store_.Update(key, confirmed.dump(), stored->mod_revision);
        if (!updated.ok()) {
          if (absl::IsAborted(updated.status())) continue;
          return FromStore(updated.status(), type, name);
        }
        confirmed["metadata"]["resourceVersion"] = absl::StrCat(*updated);
        return confirmed;
      }
    }
    const bool foreground = propagation == "Foreground";
    // A pod on a node is stopped by its node agent first, within its grace period.
    int64_t grace = 0;
    if (type.kind == "Pod" && Find(o, {"spec", "nodeName"})) {
      grace = grace_seconds.value_or(IntAt(o["spec"], "terminationGracePeriodSeconds", 30));
    }
    if (!finalizers.empty() || foreground || grace > 0) {
      Json marked = o;
      marked["metadata"]["deletionTimestamp"] = Rfc3339(absl::Now() + absl::Seconds(grace));
      marked["metadata"]["deletionGracePeriodSeconds"] = grace;
      if (foreground && std::find(finalizers.begin(), finalizers.end(), "foregroundDeletion") ==
                            finalizers.end()) {
        marked["metadata"]["finalizers"].push_back("foregroundDeletion");
      }
      marked["metadata"].erase("resourceVersion");
      auto updated = store_.Update(key, marked.dump(), stored->mod_revision);
      if (!updated.ok()) {
        if (absl::IsAborted(updated.status())) continue;
        return FromStore(updated.status(), type, name);
      }
      marked["metadata"]["resourceVersion"] = absl::StrCat(*updated);
      if (!foreground) return marked;
      // Foreground: the dependents go first, then the owner's finalizer.
      if (depth < kCascadeDepthMax) {
        for (auto& [dep_type, dep] : Dependents(ns, uid)) {
          (void)DeleteObject(*dep_type, dep.key, "Foreground", std::nullopt, Json());
        }
      }
      for (int i = 0; i < kConflictRetriesMax; ++i) {
        auto now = store_.Get(key);
        if (!now.ok()) break;
        Json cur = Decode(*now);
        Json left = Json::array();
        for (const Json& f : cur["metadata"].value("finalizers", Json::array())) {
          if (f != "foregroundDeletion") left.push_back(f);
        }
        cur["metadata"]["finalizers"] = left;
        cur["metadata"].erase("resourceVersion");
        absl::StatusOr<int64_t> done = left.empty()
                                           ? store_.Delete(key, now->mod_revision)
                                           : store_.Update(key, cur.dump(), now->mod_revision);
        if (done.ok() || !absl::IsAborted(done.status())) break;
      }
      return marked;
    }
    auto deleted = store_.Delete(key, stored->mod_revision);
    if (!deleted.ok()) {
      if (absl::IsAborted(deleted.status())) continue;
      return FromStore(deleted.status(), type, name);
    }
    if (type.kind == "Service") {
      const std::string ip = StringAt(o.value("spec", Json::object()), "clusterIP");
      if (!ip.empty() && ip != "None") {
        ReleaseClusterIp(absl::StrCat(kRegistryPrefix, "serviceips/", ip));
      }
    }
    if (depth < kCascadeDepthMax && !uid.empty()) {
      for (auto& [dep_type, dep] : Dependents(ns, uid)) {
        if (propagation == "Orphan") {
          // The dependent stays, no longer owned.
          for (int i = 0; i < kConflictRetriesMax; ++i) {
            auto now = store_.Get(dep.key);
            if (!now.ok()) break;
            Json cur = Json::parse(now->value, nullptr, false);
            Json refs = Json::array();
            for (const Json& r : cur["metadata"].value("ownerReferences", Json::array())) {
              if (StringAt(r, "uid") != uid) refs.push_back(r);
            }
            if (refs.empty()) {
              cur["metadata"].erase("ownerReferences");
            } else {
              cur["metadata"]["ownerReferences"] = refs;
            }
            auto w = store_.Update(dep.key, cur.dump(), now->mod_revision);
            if (w.ok() || !absl::IsAborted(w.status())) break;
          }
        } else {
          (void)DeleteObject(*dep_type, dep.key, "Background", std::nullopt, Json());
        }
      }
    }
    return o;
  }
  return Conflict(type, name, "the object kept changing while it was being deleted");
}

namespace {

struct DeleteParams {
  std::string propagation = "Background";
  std::optional<int64_t> grace_seconds;
  Json preconditions;
};

std::variant<DeleteParams, ApiError> ReadDeleteParams(const HttpRequest& request) {
  DeleteParams p;
  if (!request.body.empty()) {
    // JSON, or the protobuf DeleteOptions typed clients send.
    auto parsed = ParseObjectBody(request);
    if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
    const Json body = std::get<ParsedBody>(std::move(parsed)).object;
    if (!body.is_object()) return BadRequest("the DeleteOptions body could not be decoded");
    p.propagation = body.value("propagationPolicy", p.propagation);
    if (body.contains("orphanDependents") && body["orphanDependents"] == true) {
      p.propagation = "Orphan";
    }
    if (body.contains("gracePeriodSeconds") && body["gracePeriodSeconds"].is_number_integer()) {
      p.grace_seconds = body["gracePeriodSeconds"].get<int64_t>();
    }
    p.preconditions = body.value("preconditions", Json());
  }
  if (auto it = request.query.find("propagationPolicy"); it != request.query.end()) {
    p.propagation = it->second;
  }
  if (auto it = request.query.find("gracePeriodSeconds"); it != request.query.end()) {
    int64_t g;
    if (!absl::SimpleAtoi(it->second, &g)) return BadRequest("invalid gracePeriodSeconds");
    p.grace_seconds = g;
  }
  if (p.propagation != "Background" && p.propagation != "Foreground" && p.propagation != "Orphan") {
    return BadRequest(absl::StrCat("propagationPolicy: Unsupported value: \"", p.propagation,
                                   "\": supported values: \"Foreground\", \"Background\", "
                                   "\"Orphan\""));
  }
  return p;
}

}  // namespace

ApiHandler::Result ApiHandler::Delete(const Route& route, const HttpRequest& request) {
  auto params = ReadDeleteParams(request);
  if (auto* e = std::get_if<ApiError>(&params)) return *e;
  const DeleteParams& p = std::get<DeleteParams>(params);
  if (request.query.count("dryRun")) return Get(route, HttpRequest{});
  auto result = DeleteObject(*route.type, KeyFor(*route.type, route.namespace_name, route.name),
                             p.propagation, p.grace_seconds, p.preconditions);
  if (auto* e = std::get_if<ApiError>(&result)) return *e;
  return JsonResponse(200, std::get<Json>(result));
}

ApiHandler::Result ApiHandler::DeleteCollection(const Route& route, const HttpRequest& request) {
  auto params = ReadDeleteParams(request);
  if (auto* e = std::get_if<ApiError>(&params)) return *e;
  const DeleteParams& p = std::get<DeleteParams>(params);
  HttpRequest list_request = request;
  list_request.accept = "application/json";
  list_request.query.erase("limit");
  list_request.query.erase("continue");
  auto listed = List(route, list_request);
  if (auto* e = std::get_if<ApiError>(&listed)) return *e;
  Json list = Json::parse(std::get<HttpResponse>(listed).body);
  Json deleted = Json::array();
  for (const Json& o : list["items"]) {
    auto r = DeleteObject(*route.type,
                          KeyFor(*route.type, MetaString(o, "namespace"), MetaString(o, "name")),
                          p.propagation, p.grace_seconds, Json());
    if (auto* d = std::get_if<Json>(&r)) deleted.push_back(*d);
  }
  list["items"] = deleted;
  return JsonResponse(200, list);
}

// --- watch ---

std::optional<std::variant<WatchPlan, HttpResponse>> ApiHandler::PlanWatch(
    const HttpRequest& request) {
  auto watch = request.query.find("watch");
  const bool is_watch =
      watch != request.query.end() && (watch->second == "true" || watch->second == "1");
  if (request.method != "GET" || !is_watch) return std::nullopt;
  auto parsed = ParseRoute(request.path);
  if (!parsed) return ErrorResponse(NotFoundPath(request.path));
  if (auto* e = std::get_if<ApiError>(&*parsed)) return ErrorResponse(*e);
  const Route& route = std::get<Route>(*parsed);
  if (!route.subresource.empty())
    return ErrorResponse(MethodNotSupported(route.subresource, "watch"));
  auto q = [&](const char* k) {
    auto it = request.query.find(k);
    return it == request.query.end() ? std::string() : it->second;
  };
  WatchPlan plan;
  plan.type = route.type;
  plan.prefix = route.name.empty() ? PrefixFor(*route.type, route.namespace_name)
                                   : KeyFor(*route.type, route.namespace_name, route.name);
  auto labels = LabelSelector::Parse(q("labelSelector"));
  if (!labels.ok()) return ErrorResponse(BadRequest(std::string(labels.status().message())));
  plan.labels = *labels;
  std::string field_text = q("fieldSelector");
  if (!route.name.empty()) {
    field_text =
        absl::StrCat(field_text.empty() ? "" : field_text + ",", "metadata.name=", route.name);
  }
  auto fields = FieldSelector::Parse(field_text, *route.type);
  if (!fields.ok()) return ErrorResponse(BadRequest(std::string(fields.status().message())));
  plan.fields = *fields;
  const std::string name = plan.fields.Pinned("metadata.name");
  if (!name.empty() && (!route.type->namespaced || !route.namespace_name.empty())) {
    plan.prefix = KeyFor(*route.type, route.namespace_name, name);
  }
  const std::string rv = q("resourceVersion");
  if (rv.empty() || rv == "0") {
    plan.send_initial = true;
  } else {
    auto n = ParseRevision(rv);
    if (!n) return ErrorResponse(BadRequest(absl::StrCat("invalid resource version: ", rv)));
    plan.after_revision = *n;
  }
  if (!q("timeoutSeconds").empty()) {
    int64_t s = 0;
    if (!absl::SimpleAtoi(q("timeoutSeconds"), &s) || s < 0) {
      return ErrorResponse(BadRequest("invalid timeoutSeconds"));
    }
    plan.timeout = absl::Seconds(s);
  }
  plan.bookmarks = q("allowWatchBookmarks") == "true";
  plan.as_table = WantsTable(request);
  if (q("includeObject") == "Object") plan.include_object = IncludeObject::kObject;
  if (q("includeObject") == "None") plan.include_object = IncludeObject::kNone;
  return plan;
}

absl::StatusOr<std::vector<std::string>> ApiHandler::InitialEvents(WatchPlan& plan) {
  std::vector<std::string> lines;
  std::string start;
  int64_t revision = 0;
  while (true) {
    auto page = store_.List(plan.prefix, start, kScanPageObjectsMax, revision);
    if (!page.ok()) return page.status();
    revision = page->revision;
    for (const StoredObject& s : page->items) {
      ObjectEvent e;
      e.type = ObjectEvent::Type::kPut;
      e.revision = s.mod_revision;
      e.object = s;
      e.object.create_revision = s.mod_revision;  // shown as ADDED
      std::string line = EncodeEvent(plan, e);
      if (!line.empty()) lines.push_back(std::move(line));
    }
    if (!page->more || page->items.empty()) break;
    start = page->items.back().key + '\0';
  }
  plan.after_revision = revision;
  return lines;
}

std::string ApiHandler::EncodeEvent(const WatchPlan& plan, const ObjectEvent& event) {
  try {
    return EncodeEventUnchecked(plan, event);
  } catch (const std::exception& e) {
    spdlog::warn("event=api_watch_encode_failed key={} error=\"{}\"", event.object.key, e.what());
    return "";
  }
}

std::string ApiHandler::EncodeEventUnchecked(const WatchPlan& plan, const ObjectEvent& event) {
  const ResourceType& type = *plan.type;
  auto matches = [&](const Json& o) {
    return plan.labels.Matches(Find(o, {"metadata", "labels"})) && plan.fields.Matches(type, o);
  };
  // Keys under a name prefix may belong to longer names ("web" vs "web-2").
  if (event.object.key.size() > plan.prefix.size() && plan.prefix.back() != '/') return "";
  std::string kind;
  Json object;
  if (event.type == ObjectEvent::Type::kPut) {
    object = Decode(event.object);
    const bool now_matches = matches(object);
    bool before_matches = false;
    const bool created =
        event.object.create_revision == event.object.mod_revision || event.previous.key.empty();
    if (!created) before_matches = matches(Decode(event.previous));
    if (now_matches) {
      kind = created || !before_matches ? "ADDED" : "MODIFIED";
    } else if (before_matches) {
      kind = "DELETED";
    } else {
      return "";
    }
  } else {
    if (event.previous.key.empty()) return "";
    object = Decode(event.previous);
    if (!matches(object)) return "";
    object["metadata"]["resourceVersion"] = absl::StrCat(event.revision);
    kind = "DELETED";
  }
  Json out = {{"type", kind}};
  if (plan.as_table) {
    out["object"] = ToTable(type, {object}, plan.include_object, true,
                            MetaString(object, "resourceVersion"), "");
  } else {
    out["object"] = std::move(object);
  }
  std::string line = out.dump();
  line.push_back('\n');
  return line;
}

std::string ApiHandler::EncodeError(const ApiError& error) {
  Json out = {{"type", "ERROR"}, {"object", StatusJson(error)}};
  return out.dump() + "\n";
}

std::string ApiHandler::EncodeBookmark(const WatchPlan& plan, int64_t revision) {
  Json out = {{"type", "BOOKMARK"},
              {"object",
               {{"kind", plan.type->kind},
                {"apiVersion", plan.type->ApiVersion()},
                {"metadata", {{"resourceVersion", absl::StrCat(revision)}}}}}};
  return out.dump() + "\n";
}

}  // namespace ganglion::orchestrator
