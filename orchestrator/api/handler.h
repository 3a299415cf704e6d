// The REST semantics of the Kubernetes-shaped API, independent of HTTP
// plumbing: routing of /api and /apis paths to a resource type, namespace,
// name and subresource; the verbs (create, get, list, update, patch, delete,
// deletecollection, watch) over an ObjectStore; metadata (uid,
// resourceVersion = the key's mod revision, generation, creationTimestamp,
// deletionTimestamp and finalizers); defaulting and validation from the
// registry; server-side tables; deletion propagation to dependents.
// Every write is a compare-and-swap on the revision it read, so concurrent
// writers conflict (409) instead of overwriting each other. Blocking: the
// HTTP server calls it from its worker threads, never from an I/O thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "orchestrator/api/selectors.h"
#include "orchestrator/api/status.h"
#include "orchestrator/storage/object_store.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

struct HttpRequest {
  std::string method;
  std::string path;                          // decoded, without the query
  std::map<std::string, std::string> query;  // decoded; last value wins
  std::string accept;
  std::string content_type;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Each becomes a `Warning: 299 - "<text>"` header (kubectl prints "Warning: <text>").
  std::vector<std::string> warnings;
};

// The node agent that serves a pod's logs, and the request target to send it.
struct LogTarget {
  std::string host;
  int port = 0;
  std::string target;  // "/containerLogs/ns/pod/c?tailLines=5"
  bool follow = false;
};
inline constexpr absl::Duration kLogFetchTimeout = absl::Seconds(30);

// How rows carry their object in a server-side table (?includeObject=).
enum class IncludeObject { kNone, kMetadata, kObject };

// Everything a watch stream needs after its request was accepted.
struct WatchPlan {
  const ResourceType* type = nullptr;
  std::string prefix;  // store keys under it
  LabelSelector labels;
  FieldSelector fields;
  int64_t after_revision = 0;
  // resourceVersion unset or "0": first send every matching object as ADDED.
  bool send_initial = false;
  absl::Duration timeout = absl::Minutes(30);
  bool bookmarks = false;
  bool as_table = false;
  IncludeObject include_object = IncludeObject::kMetadata;
};

class ApiHandler {
 public:
  // `server_address`: host:port clients reach this server at (for /api).
  ApiHandler(ObjectStore& store, std::string server_address);

  // Creates default, kube-system, kube-public and kube-node-lease if absent.
  absl::Status EnsureDefaultNamespaces();

  // Any request but a watch.
  HttpResponse Handle(const HttpRequest& request);

  // nullopt if `request` is not a watch; else its plan, or the error to answer.
  std::optional<std::variant<WatchPlan, HttpResponse>> PlanWatch(const HttpRequest& request);
  // For send_initial: the current matching objects as ADDED lines; sets the
  // plan's after_revision to the revision they were read at.
  absl::StatusOr<std::vector<std::string>> InitialEvents(WatchPlan& plan);
  // The watch line ("{...}\n") for a store event, or "" if the plan filters it out.
  std::string EncodeEvent(const WatchPlan& plan, const ObjectEvent& event);
  std::string EncodeError(const ApiError& error);
  std::string EncodeBookmark(const WatchPlan& plan, int64_t revision);
  // nullopt if `request` is not GET pods/<name>/log?follow=true; else the
  // node agent to stream from, or the error to answer.
  std::optional<std::variant<LogTarget, HttpResponse>> PlanLogStream(const HttpRequest& request);

 private:
  struct Route {
    const ResourceType* type = nullptr;
    std::string namespace_name;  // "" for cluster-scoped or all namespaces
    std::string name;
    std::string subresource;
  };
  using Result = std::variant<HttpResponse, ApiError>;

  HttpResponse HandleUnchecked(const HttpRequest& request);
  std::string EncodeEventUnchecked(const WatchPlan& plan, const ObjectEvent& event);
  // Discovery, OpenAPI, health: nullopt if the path is not one of them.
  std::optional<HttpResponse> HandleNonResource(const HttpRequest& request);
  // nullopt: the path names no resource (404). ApiError: it names a bad one.
  std::optional<std::variant<Route, ApiError>> ParseRoute(const std::string& path) const;

  Result Get(const Route& route, const HttpRequest& request);
  Result List(const Route& route, const HttpRequest& request);
  // `warnings` collects what fieldValidation=Warn reports (Warning headers).
  Result Create(const Route& route, const HttpRequest& request, std::vector<std::string>& warnings);
  Result Update(const Route& route, const HttpRequest& request, std::vector<std::string>& warnings);
  Result Patch(const Route& route, const HttpRequest& request, std::vector<std::string>& warnings);
  Result Delete(const Route& route, const HttpRequest& request);
  Result DeleteCollection(const Route& route, const HttpRequest& request);
  Result CreateBinding(const Route& route, const HttpRequest& request);
  Result Log(const Route& route, const HttpRequest& request);
  std::variant<LogTarget, ApiError> ResolveLog(const Route& route, const HttpRequest& request);

  // Read-modify-write of one object with CAS, retried on conflict when the
  // caller did not pin a resourceVersion. `mutate` returns the new object.
  using Mutation = std::function<std::variant<Json, ApiError>(const Json& current)>;
  Result ReadModifyWrite(const Route& route, const Mutation& mutate, int success_code = 200);
  // Defaulting, validation, metadata rules for an update; writes with CAS.
  std::variant<Json, ApiError> Store(const ResourceType& type, Json object, const Json& old,
                                     int64_t old_revision);
  // Deletes with the given propagation; returns what the client is shown.
  std::variant<Json, ApiError> DeleteObject(const ResourceType& type, const std::string& key,
                                            const std::string& propagation,
                                            std::optional<int64_t> grace_seconds,
                                            const Json& preconditions);
  // Objects whose ownerReferences name `owner_uid`, in `namespace_name`.
  std::vector<std::pair<const ResourceType*, StoredObject>> Dependents(
      const std::string& namespace_name, const std::string& owner_uid);

  std::string KeyFor(const ResourceType& type, const std::string& namespace_name,
                     const std::string& name) const;
  std::string PrefixFor(const ResourceType& type, const std::string& namespace_name) const;
  Json Decode(const StoredObject& stored) const;  // sets metadata.resourceVersion
  // The stored text with metadata.resourceVersion spliced in, without parsing.
  std::string EncodeStored(const StoredObject& stored) const;
  Json ToTable(const ResourceType& type, const std::vector<Json>& objects, IncludeObject include,
               bool with_columns, const std::string& resource_version,
               const std::string& continue_token) const;
  bool WantsTable(const HttpRequest& request) const;
  // Reserves the service's cluster IP (the one asked for, or a free one);
  // returns the reservation's key ("" if the service takes none).
  std::variant<std::string, ApiError> AllocateClusterIp(Json& service);
  void ReleaseClusterIp(const std::string& reservation_key);
  std::string NewUid();
  std::string RandomSuffix();

  ObjectStore& store_;
  const std::string server_address_;
  std::mutex random_mu_;
  std::mt19937_64 random_;  // guarded by random_mu_
};

HttpResponse ErrorResponse(const ApiError& error);

}  // namespace ganglion::orchestrator
