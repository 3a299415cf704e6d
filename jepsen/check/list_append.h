// Transactional anomalies in list-append histories, the way Elle finds them:
// every append writes a unique value, so a read of a key's list reveals the
// order of that key's versions. From the committed transactions it builds a
// dependency graph (write-write: one version follows another; write-read: a
// transaction read a version another wrote; read-write: a transaction read a
// version that another overwrote next; real time: one transaction completed
// before another began) and reports its cycles by the weakest level they
// violate: G0 (write-write only), G1c (with write-read), G-single (exactly
// one read-write edge), G2 (several); a cycle that needs a real-time edge is
// reported with "-realtime" (strict serializability, not serializability).
// Also: aborted reads (G1a: a failed transaction's append was read),
// intermediate reads (G1b: a read saw a transaction's non-final append to a
// key), lists that are not prefixes of one order (incompatible-order), and
// appends read twice or values read that nobody appended.
#pragma once

#include <string>
#include <vector>

#include "jepsen/check/history.h"
#include "jepsen/check/linearizable.h"

namespace ganglion::jepsen {

struct Anomaly {
  std::string type;          // "G0", "G1c", "G-single", "G2", "G1a", ...
  std::vector<int64_t> ops;  // history indexes, in cycle order for cycles
  std::string explanation;   // one line a reader can follow
};

struct ListAppendResult {
  Verdict verdict = Verdict::kValid;
  std::vector<Anomaly> anomalies;
  size_t transactions = 0;  // committed ones checked
};

ListAppendResult CheckListAppend(const std::vector<Operation>& history);

}  // namespace ganglion::jepsen
