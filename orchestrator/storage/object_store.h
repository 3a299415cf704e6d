// Where the orchestrator keeps its objects: opaque values under string keys,
// each with the revision that last modified it, read and written with
// compare-and-swap on that revision, and watched as one ordered stream of
// changes. The API server and (later) the reconcilers see objects only
// through this interface, so an in-process implementation can replace the one
// over the etcd client. It must never write without a precondition: a create
// requires absence, an update or delete requires the revision the caller read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ganglion::orchestrator {

struct StoredObject {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;
  int64_t create_revision = 0;
};

struct ListPage {
  std::vector<StoredObject> items;
  int64_t revision = 0;   // the store's revision the page was read at
  bool more = false;      // keys after the last item remain
  int64_t remaining = 0;  // how many, when `more`
};

struct ObjectEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  int64_t revision = 0;   // of the change
  StoredObject object;    // after the change; for a delete, empty value
  StoredObject previous;  // before the change (empty key if it did not exist)
};

// Called with the events of one or more whole revisions, in revision order,
// on the store's watch thread: it must not block.
using EventSink = std::function<void(const std::vector<ObjectEvent>& events)>;
// Called once when a subscription ends for a reason other than Cancel: its
// start revision was compacted (OutOfRange) or the store's own watch broke.
using EndSink = std::function<void(const absl::Status& why)>;

class Subscription {
 public:
  virtual ~Subscription() = default;  // cancels
  // After Cancel returns no sink of this subscription runs again.
  virtual void Cancel() = 0;
};

// Errors: NotFound (no such key), AlreadyExists (create of a present key),
// Aborted (the key's mod revision is not the expected one: a conflict),
// OutOfRange (the revision asked for has been compacted), others from the
// transport (Unavailable, DeadlineExceeded).
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  virtual absl::StatusOr<StoredObject> Get(std::string_view key) = 0;
  // Keys under `prefix` starting at `start_key` (inclusive; "" = the prefix's
  // first), at most `limit` (0: all), read at `revision` (0: the newest).
  virtual absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view start_key,
                                        int64_t limit, int64_t revision) = 0;
  // Returns the new object's revision.
  virtual absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value) = 0;
  // Writes only if the key's mod revision is still `expected_mod_revision`.
  virtual absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value,
                                         int64_t expected_mod_revision) = 0;
  virtual absl::StatusOr<int64_t> Delete(std::string_view key, int64_t expected_mod_revision) = 0;
  // Every change under `prefix` with revision > `after_revision`. OutOfRange
  // if `after_revision` has been compacted or is older than what the store
  // can replay. May block (a read of the store); never call it on an I/O thread.
  virtual absl::StatusOr<std::unique_ptr<Subscription>> Watch(std::string_view prefix,
                                                              int64_t after_revision,
                                                              EventSink on_events,
                                                              EndSink on_end) = 0;
  // The newest revision the watch has seen (events or progress).
  virtual int64_t watched_revision() const = 0;
};

}  // namespace ganglion::orchestrator
