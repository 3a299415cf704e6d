// An ObjectStore in memory, with etcd's revision semantics (one global
// revision, bumped by every write; mod/create revisions per key; compaction),
// for unit tests of the API and, later, for in-process users. It keeps no
// old versions: a read at a past revision succeeds only while nothing was
// written since, else it is OutOfRange as if compacted. Events are
// delivered synchronously, in the writer's thread, under the store's lock: a
// sink must not call back into the store. It must never diverge from the
// etcd-backed store in what a caller can observe: the same errors for the
// same preconditions, the same event order.
#pragma once

#include <map>
#include <mutex>
#include <vector>

#include "orchestrator/storage/object_store.h"

namespace ganglion::orchestrator {

class MemoryObjectStore : public ObjectStore {
 public:
  // `history_events_max`: events kept for watches that start in the past.
  explicit MemoryObjectStore(size_t history_events_max = 10000)
      : history_events_max_(history_events_max) {}

  absl::StatusOr<StoredObject> Get(std::string_view key) override;
  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view start_key, int64_t limit,
                                int64_t revision) override;
  absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value) override;
  absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value,
                                 int64_t expected_mod_revision) override;
  absl::StatusOr<int64_t> Delete(std::string_view key, int64_t expected_mod_revision) override;
  absl::StatusOr<std::unique_ptr<Subscription>> Watch(std::string_view prefix,
                                                      int64_t after_revision, EventSink on_events,
                                                      EndSink on_end) override;
  int64_t watched_revision() const override;

  // Forgets history up to `revision`: reads and watches before it are OutOfRange.
  void Compact(int64_t revision);

 private:
  struct Watch_ {
    std::string prefix;
    EventSink on_events;
    bool active = true;
  };
  class SubscriptionImpl;
  void Emit(ObjectEvent event);  // with mu_ held

  const size_t history_events_max_;
  mutable std::mutex mu_;
  int64_t revision_ = 1;                          // guarded by mu_
  int64_t compacted_revision_ = 0;                // guarded by mu_
  std::map<std::string, StoredObject> objects_;   // guarded by mu_
  std::vector<ObjectEvent> history_;              // guarded by mu_; bounded
  std::vector<std::shared_ptr<Watch_>> watches_;  // guarded by mu_
};

}  // namespace ganglion::orchestrator
