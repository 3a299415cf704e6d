// Watching keys: every watcher of a Client shares one gRPC stream. When the
// stream breaks or its member dies, it is reopened on another member and each
// watcher is re-created from the revision after the last one it delivered, so
// no event is lost or repeated. A watcher's queue is bounded: a consumer that
// falls behind has its server-side watch cancelled and re-created once it
// drains, instead of stalling the other watchers or buffering without limit.
// It must never deliver an event twice, out of order, or skip one silently:
// a compacted start revision is an explicit error (IsCompacted).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/endpoints.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"

namespace ganglion::client {

struct WatchOptions {
  // Watch [key, range_end); `prefix` and `from_key` compute range_end.
  std::string range_end;
  bool prefix = false;
  bool from_key = false;
  int64_t start_revision = 0;  // 0: from the next revision
  bool prev_kv = false;
  bool progress_notify = false;  // periodic progress notifications when idle
  bool no_put = false;
  bool no_delete = false;
  // Responses queued for this watcher before its server-side watch is paused.
  size_t queue_responses_max = 1024;
};

// One server response: the events of one or more whole revisions, or a
// progress notification (no events; every event up to `revision` delivered).
struct WatchBatch {
  int64_t revision = 0;  // the store's revision when the server sent it
  std::vector<mvccpb::Event> events;
  bool progress_notify = false;
};

// Whether a watcher failed because its next revision was compacted away; the
// caller must re-list (and watch again from the list's revision + 1).
bool IsCompacted(const absl::Status& status);
// The compaction revision carried by such an error (0 if it carries none).
int64_t CompactRevision(const absl::Status& status);

class WatchStream;
struct WatcherState;

class Watcher {
 public:
  Watcher(std::shared_ptr<WatchStream> stream, std::shared_ptr<WatcherState> state);
  ~Watcher();  // cancels
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // The next batch, waiting up to `timeout` (DeadlineExceeded if none came).
  // After an error (compaction, cancellation by the server, Cancel()) every
  // later call returns the same error.
  absl::StatusOr<WatchBatch> Next(absl::Duration timeout);
  void Cancel();
  // The revision this watcher resumes from: the last delivered one + 1.
  int64_t next_revision() const;

 private:
  std::shared_ptr<WatchStream> stream_;
  std::shared_ptr<WatcherState> state_;
};

class WatchClient {
 public:
  explicit WatchClient(std::shared_ptr<EndpointSet> endpoints);
  ~WatchClient();  // closes the stream; watchers that outlive it report Cancelled

  // Returns once the server confirmed the watch (or with its error).
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(std::string_view key,
                                                 const WatchOptions& options = {});
  // Asks the server for a progress notification on every watcher of the stream.
  absl::Status RequestProgress();

 private:
  std::shared_ptr<EndpointSet> endpoints_;
  std::mutex mu_;                        // guards stream_ creation
  std::shared_ptr<WatchStream> stream_;  // started by the first Watch
};

}  // namespace ganglion::client
