// A scripted in-memory cluster for scenario transcripts (raft/testdata/*.txt).
//
// Each node is a RawNode over its own MemoryStorage. Nothing happens unless a
// command says so: messages a node emits wait in the network until a
// `deliver-msgs` (or `stabilize`) hands them to their recipient, ticks happen
// only on `tick-*`, and Ready batches are handled only on `process-ready`.
// That makes every step of the protocol visible and the output deterministic.
// Test-only: never linked into the server.
//
// Commands (IDs are 1-based, in order of creation):
//   add-nodes N [voters=(..)] [learners=(..)] [index=I content=S]
//             [prevote=B] [checkquorum=B] [disable-forwarding=B]
//             [max-uncommitted-size=BYTES] [read-only=safe|lease]
//   campaign ID | propose ID DATA | read-index ID CTX
//   propose-conf-change ID [v4] [l5] [r2] [transition=auto|implicit|explicit]
//   transfer-leadership from=X to=Y | report-unreachable ID TARGET
//   tick-election ID | tick-heartbeat ID | tick ID [n=N]
//   process-ready ID... | deliver-msgs [drop=(..)] [ID...] | stabilize [ID...]
//   status ID | raft-state | raft-log ID | compact ID INDEX | restart ID
//   cut A B | isolate ID | heal          (cut links drop messages on delivery)
//   log-level silent|none|info           (silent: errors only; none: no events)
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "raft/raw_node.h"
#include "raft/storage.h"

namespace ganglion::raft::testing {

// One parsed command line: `name pos1 pos2 key=value key=(a,b,c)`.
struct Command {
  std::string name;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;
};

// Splits a command line into a Command; parenthesised lists may not nest.
absl::StatusOr<Command> ParseCommand(const std::string& line);

class InteractionEnv {
 public:
  InteractionEnv() = default;
  InteractionEnv(const InteractionEnv&) = delete;
  InteractionEnv& operator=(const InteractionEnv&) = delete;

  // Runs one command and returns its transcript: lines without a trailing
  // newline, never an empty line ("ok" when there is nothing to say).
  std::string Handle(const Command& c);

 private:
  struct Node {
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> raw;
    Config cfg;
    // What the application applied: (index, payload) of non-empty normal
    // entries. Snapshots carry it as "index:payload" items joined by ','.
    std::vector<std::pair<Index, std::string>> applied;
    Index applied_index = 0;
  };

  absl::Status AddNodes(const Command& c);
  absl::Status ProcessReady(NodeId id);
  // Delivers every message in the network addressed to `id`; false if none.
  bool DeliverTo(NodeId id, const std::set<NodeId>& drop);
  absl::Status Stabilize(const std::vector<NodeId>& ids);
  absl::Status Tick(NodeId id, int ticks);
  absl::Status TickElection(NodeId id);
  absl::Status ProposeConfChange(const Command& c);
  absl::Status Compact(NodeId id, Index index);
  absl::Status Restart(NodeId id);
  void PrintStatus(NodeId id);
  void PrintRaftState();
  void PrintRaftLog(NodeId id);

  absl::StatusOr<NodeId> NodeArg(const std::string& s) const;
  absl::StatusOr<std::vector<NodeId>> NodeList(const std::vector<std::string>& vals) const;
  // The listed nodes, or every node when none is listed.
  absl::StatusOr<std::vector<NodeId>> NodesOrAll(const std::vector<std::string>& vals) const;
  Node& node(NodeId id) { return nodes_[id - 1]; }
  bool IsCut(NodeId a, NodeId b) const;
  std::string EncodeApplied(const Node& n, Index upto) const;
  std::unique_ptr<RawNode> NewRawNode(Node& n);
  void Print(const std::string& line);

  // Owned by address: each node's event_sink captures `this`.
  std::vector<Node> nodes_;
  // Messages sent and not yet delivered or dropped, in send order.
  std::vector<Message> network_;
  std::set<std::pair<NodeId, NodeId>> cuts_;  // (low id, high id)
  bool show_events_ = true;
  bool silent_ = false;
  int indent_ = 0;
  std::vector<std::string> out_;
};

}  // namespace ganglion::raft::testing
