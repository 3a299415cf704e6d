// How reconcilers (and the node agent) write objects: through the API's own
// REST semantics (ApiHandler, called in-process), so an object they create
// gets the same defaulting, validation and metadata (uid, generation,
// creationTimestamp, generateName) as one a kubectl user creates. Every
// update is a compare-and-swap on the object's metadata.resourceVersion: a
// decision taken on stale state fails with Aborted and is retried, it never
// overwrites. It must never retry a conflicting write by itself.
//
// Errors: NotFound, AlreadyExists, Aborted (conflict: stale
// resourceVersion), InvalidArgument (rejected by validation), FailedPrecondition
// (the writer is fenced: its leadership ended), Unavailable (the store).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "orchestrator/api/handler.h"

namespace ganglion::orchestrator {

enum class PatchType { kJson, kMerge, kStrategic };

struct DeleteOptions {
  std::string propagation;  // "", "Background", "Foreground", "Orphan"
  std::optional<int64_t> grace_period_seconds;
  // Preconditions: delete only the object with this uid / resourceVersion.
  std::string uid;
  std::string resource_version;
};

// The resource type for group ("" for core) and plural, e.g. ("apps",
// "deployments"); aborts if the registry has no such type (a programming error).
const ResourceType& TypeOf(const std::string& group, const std::string& plural);

class ObjectClient {
 public:
  // `may_write`: checked before every write; false fences the client (its
  // owner lost the right to write, e.g. the member stepped down).
  explicit ObjectClient(ApiHandler& api, std::function<bool()> may_write = nullptr,
                        std::string component = "ganglion");

  // A read from the store (not a cache): for the rare read-your-write.
  absl::StatusOr<Json> Get(const ResourceType& type, const std::string& namespace_name,
                           const std::string& name);
  // The namespace comes from object.metadata.namespace; metadata.generateName works.
  absl::StatusOr<Json> Create(const ResourceType& type, const Json& object);
  // PUT of the whole object (or of its "status" / "scale" subresource), with
  // metadata.resourceVersion as the precondition (required).
  absl::StatusOr<Json> Update(const ResourceType& type, const Json& object,
                              const std::string& subresource = "");
  absl::StatusOr<Json> Patch(const ResourceType& type, const std::string& namespace_name,
                             const std::string& name, PatchType patch_type, const Json& patch,
                             const std::string& subresource = "");
  absl::Status Delete(const ResourceType& type, const std::string& namespace_name,
                      const std::string& name, const DeleteOptions& options = {});
  // POST pods/<name>/binding.
  absl::Status Bind(const std::string& namespace_name, const std::string& pod_name,
                    const std::string& pod_uid, const std::string& node_name);
  // Records a core/v1 Event about `involved` (type "Normal" or "Warning").
  absl::Status RecordEvent(const Json& involved, const std::string& type, const std::string& reason,
                           const std::string& message);

  const std::string& component() const { return component_; }

 private:
  absl::StatusOr<Json> Call(const std::string& method, const std::string& path,
                            const std::string& content_type, const Json* body,
                            const std::map<std::string, std::string>& query = {},
                            bool is_write = true);

  ApiHandler& api_;
  const std::function<bool()> may_write_;
  const std::string component_;
};

// "/api/v1/namespaces/ns/pods/name", "/apis/apps/v1/deployments" ...
std::string ResourcePath(const ResourceType& type, const std::string& namespace_name,
                         const std::string& name = "", const std::string& subresource = "");

}  // namespace ganglion::orchestrator
