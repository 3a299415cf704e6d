// An Informer mirrors every key under a prefix into an in-memory ordered
// cache: it lists the prefix, then watches it from the list's revision + 1,
// and calls the add/update/delete handlers for each change, from its own
// single thread, in revision order. When the watch reports compaction (or
// breaks beyond what the watch stream resumes), it lists again and emits the
// difference as adds, updates and deletes. It must never let the cache skip
// a revision or move backwards: synced_revision() only grows, and the cache
// always equals the prefix's contents at that revision.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace ganglion::client {

struct InformerHandlers {
  std::function<void(const mvccpb::KeyValue& added)> on_add;
  std::function<void(const mvccpb::KeyValue& before, const mvccpb::KeyValue& after)> on_update;
  std::function<void(const mvccpb::KeyValue& deleted)> on_delete;
};

class Informer {
 public:
  // `queue_responses_max`: the watch queue bound (see WatchOptions); a
  // handler slower than the writes pauses the watch rather than buffering.
  Informer(Client& client, std::string prefix, InformerHandlers handlers = {},
           size_t queue_responses_max = 1024);
  ~Informer();  // Stop()
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Lists the prefix (calling on_add for each key) and starts watching.
  // Returns once the first list is in the cache, or its error.
  absl::Status Start();
  void Stop();

  // The revision the cache reflects: every change up to it has been applied.
  int64_t synced_revision() const;
  // Waits until synced_revision() >= revision (asking the server for a
  // progress notification when the prefix is quiet). False at the timeout.
  bool WaitForRevision(int64_t revision, absl::Duration timeout);

  std::optional<mvccpb::KeyValue> Get(const std::string& key) const;
  std::map<std::string, mvccpb::KeyValue> Snapshot() const;
  int relists() const;  // lists after the first one (compactions, broken watches)

 private:
  absl::Status List();  // fetches the prefix and applies the difference
  void Run();
  void Apply(const mvccpb::Event& event);
  void SetSynced(int64_t revision);

  Client& client_;
  const std::string prefix_;
  const InformerHandlers handlers_;
  const size_t queue_responses_max_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, mvccpb::KeyValue> cache_;  // guarded by mu_
  int64_t synced_revision_ = 0;                    // guarded by mu_
  int relists_ = 0;                                // guarded by mu_
  bool stop_ = false;                              // guarded by mu_
  absl::Status first_list_;                        // guarded by mu_
  bool first_list_done_ = false;                   // guarded by mu_

  std::unique_ptr<Watcher> watcher_;  // the informer thread's alone
  std::thread thread_;
};

}  // namespace ganglion::client
