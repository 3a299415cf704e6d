// An in-memory cache of every object of one resource type, fed by an
// ObjectStore: it lists the type's prefix, then follows the store's watch
// from the list's revision, and calls its handlers for each add, update and
// delete, in revision order. When the watch ends (its start was compacted,
// or the store's own watch broke) it lists again and reports the difference.
// Reconcilers read objects only from here, so a decision is taken on the
// state at one revision and written back with compare-and-swap on it.
//
// It must never let the cache skip or repeat a change, nor move backwards:
// revision() only grows and the cache equals the type's objects at it.
// Objects are immutable once cached (shared, never modified in place).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "orchestrator/storage/object_store.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

using ObjectPtr = std::shared_ptr<const Json>;

// The queue key of an object: "namespace/name", or "name" when it has no
// namespace (cluster-scoped).
std::string ObjectKey(const Json& object);
std::string ObjectKey(const std::string& namespace_name, const std::string& name);
// The (namespace, name) of a queue key.
std::pair<std::string, std::string> SplitObjectKey(const std::string& key);

// Called on the store's watch thread (or the cache's relist thread), one at a
// time, in revision order. They must not block: enqueue keys and return.
struct CacheHandlers {
  std::function<void(const ObjectPtr& added)> on_add;
  std::function<void(const ObjectPtr& before, const ObjectPtr& after)> on_update;
  std::function<void(const ObjectPtr& deleted)> on_delete;
};

// Values an object is indexed under (e.g. its node name, its owners' uids).
using IndexFn = std::function<std::vector<std::string>(const Json& object)>;

class ObjectCache {
 public:
  // Lists are read `page_size` objects at a time, all at one revision.
  ObjectCache(ObjectStore& store, const ResourceType& type, int64_t page_size = 5000);
  ~ObjectCache();  // Stop()s
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;

  // Both before Start.
  void AddHandlers(CacheHandlers handlers);
  void AddIndex(const std::string& name, IndexFn fn);

  // Lists (calling on_add for each object) and starts following the watch.
  // Returns once the first list is in the cache, or its error.
  absl::Status Start();
  // After it returns no handler runs again.
  void Stop();

  const ResourceType& type() const { return type_; }
  ObjectPtr Get(const std::string& key) const;  // null if absent
  ObjectPtr Get(const std::string& namespace_name, const std::string& name) const;
  // Every object, or those in one namespace; in key order.
  std::vector<ObjectPtr> List(const std::string& namespace_name = "") const;
  std::vector<ObjectPtr> ByIndex(const std::string& index, const std::string& value) const;
  size_t size() const;
  // The store revision the cache reflects.
  int64_t revision() const;
  // Waits until revision() >= `revision`; false at the timeout or once stopped.
  bool WaitForRevision(int64_t revision, absl::Duration timeout);
  int relists() const;

 private:
  absl::Status ListAndWatch(bool first);
  // One change to report: before null for an add, after null for a delete.
  struct Change {
    ObjectPtr before, after;
  };
  void Notify(const std::vector<Change>& changes);  // calls the handlers
  void OnEvents(const std::vector<ObjectEvent>& events);
  void Run();  // relists after the watch ended
  // Puts or removes one object; returns the object it replaced (or null).
  ObjectPtr PutLocked(const std::string& key, ObjectPtr object);
  ObjectPtr RemoveLocked(const std::string& key);
  void IndexLocked(const std::string& key, const Json& object, bool add);

  ObjectStore& store_;
  const ResourceType& type_;
  const std::string prefix_;  // "/registry/<plural>/"
  const int64_t page_size_;
  std::vector<CacheHandlers> handlers_;      // fixed after Start
  std::map<std::string, IndexFn> index_fns_;  // fixed after Start

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, ObjectPtr> objects_;  // guarded by mu_; by queue key
  // index name -> value -> keys; guarded by mu_
  std::map<std::string, std::map<std::string, std::set<std::string>>> indexes_;
  int64_t revision_ = 0;   // guarded by mu_
  bool stop_ = false;      // guarded by mu_
  bool relist_ = false;    // guarded by mu_; the watch ended
  bool live_ = false;      // guarded by mu_; the watch follows the store
  int relists_ = 0;        // guarded by mu_

  // Touched by Start, then the relist thread, then Stop: never at once. A
  // sink runs only while it is live, so handlers never run concurrently.
  std::unique_ptr<Subscription> subscription_;
  std::thread thread_;
};

}  // namespace ganglion::orchestrator
