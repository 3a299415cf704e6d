// Checkers for the watch, lock and lease workloads: pure functions of what
// the clients observed, no I/O.
//  - watch: every watcher saw the same ordered sequence of (revision, key,
//    value), revisions strictly increasing (no duplicate), none missing that
//    another watcher saw (no gap), and every acknowledged write is in it.
//  - lock: writes fenced by the lock (a Txn guarded by the holder's key) that
//    the cluster accepted, in revision order, never interleave between two
//    holders, and holders' fencing tokens never go backwards.
//  - lease: a key attached to a lease is present for any read that ended
//    before a later keep-alive of that lease succeeded, and gone once the
//    keep-alive stopped and the TTL (plus a grace) passed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jepsen/check/linearizable.h"

namespace ganglion::jepsen {

struct EventCheckResult {
  Verdict verdict = Verdict::kValid;
  std::vector<std::string> problems;  // one line each, the first few
  std::vector<int64_t> ops;           // history indexes involved
};

// ---- watch ----
struct WatchEvent {
  int64_t revision = 0;
  std::string key;
  std::string value;
  bool is_delete = false;
  bool operator==(const WatchEvent&) const = default;
};
struct WatcherLog {
  int watcher = 0;
  std::vector<WatchEvent> events;
  bool complete = false;  // reached the final revision
  std::string error;      // why not
};
struct AckedWrite {
  int64_t op_index = 0;
  int64_t revision = 0;
  std::string key;
  std::string value;
};
EventCheckResult CheckWatch(const std::vector<WatcherLog>& watchers,
                            const std::vector<AckedWrite>& acked);

// ---- lock ----
struct FencedWrite {
  int64_t op_index = 0;
  int process = 0;
  int64_t token = 0;     // the holder's fencing token
  int64_t revision = 0;  // the revision the accepted write created
};
EventCheckResult CheckFencedWrites(std::vector<FencedWrite> writes);

// ---- lease ----
struct LeaseRead {
  int64_t op_index = 0;
  int64_t start_ns = 0, end_ns = 0;
  bool present = false;
};
struct LeaseLife {
  int64_t lease_id = 0;
  std::string key;
  int64_t ttl_s = 0;
  int64_t put_end_ns = 0;                 // the attached Put was acknowledged
  std::vector<int64_t> renewal_start_ns;  // keep-alives that succeeded, when sent
  int64_t last_renewal_end_ns = 0;        // when the last successful one answered
  std::vector<LeaseRead> reads;           // while kept alive, and the final one
  int64_t stopped_ns = -1;                // keep-alive stopped (-1: never)
};
// `grace_ns`: how long past TTL an expiry may take (leader change, apply).
EventCheckResult CheckLeases(const std::vector<LeaseLife>& leases, int64_t grace_ns);

}  // namespace ganglion::jepsen
