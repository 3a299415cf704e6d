// Pending linearizable reads (ReadIndex): each waits until a quorum confirms
// the leader is still the leader, in request order.
#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "raft/types.h"

namespace ganglion::raft {

enum class ReadOnlyOption {
  // Confirm leadership with a heartbeat round (the default: safe).
  kSafe,
  // Trust the leader lease (CheckQuorum): no round trip, but it depends on
  // bounded clock drift between members.
  kLeaseBased,
};

// A read that may be served once the state machine applied `index`.
struct ReadState {
  Index index = 0;
  std::string request_ctx;
  bool operator==(const ReadState&) const = default;
};

class ReadOnly {
 public:
  struct Status {
    Message req;
    Index index = 0;
    std::set<NodeId> acks;
  };

  void AddRequest(Index index, const Message& m);
  // Records a heartbeat ack carrying ctx; returns who has acked it.
  const std::set<NodeId>* RecvAck(NodeId id, const std::string& ctx);
  // Every request up to and including ctx is confirmed; returns them in order.
  std::vector<Status> Advance(const std::string& ctx);
  std::string LastPendingRequestCtx() const;
  size_t pending() const { return queue_.size(); }
  void Clear() {
    pending_.clear();
    queue_.clear();
  }

 private:
  // Bounded by the leader's cap on pending reads (Config::max_pending_reads).
  std::map<std::string, Status> pending_;
  std::deque<std::string> queue_;
};

}  // namespace ganglion::raft
