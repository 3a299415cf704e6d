// The raft loop: the one thread that owns a member's RawNode. It ticks on the
// heartbeat interval, steps what peers send, turns client proposals into
// Raft proposals, and for every Ready persists (one synced write), sends,
// applies configuration changes and hands committed entries to the apply
// loop. It never applies state-machine entries itself and never blocks on a
// peer: sending is the transport's queue.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "raft/raw_node.h"
#include "storage/raft_log_store.h"

namespace ganglion::server {

// What one Ready hands to the apply loop, in log order.
struct Committed {
  std::optional<raft::Snapshot> snapshot;  // apply first, if set
  std::vector<raft::Entry> entries;
  // For each conf change entry in `entries` (by index): the membership it
  // produced, or the error every member rejects it with.
  std::vector<std::pair<raft::Index, absl::StatusOr<raft::ConfState>>> conf_changes;
};

struct RaftLoopOptions {
  // id, storage (the log store), election/heartbeat ticks, limits, seed.
  raft::Config raft;
  storage::RaftLogStore* log_store = nullptr;  // not owned
  std::chrono::milliseconds tick_interval{100};
  // Commands waiting for the loop; beyond this, Propose and Step refuse.
  size_t inbox_max = 16384;

  // Called on the loop thread; each must return quickly (queue the work).
  std::function<void(std::vector<raft::Message>)> send;
  std::function<void(Committed)> on_committed;
  std::function<void(const raft::SoftState&, raft::Term)> on_leader_change;
  std::function<void(std::vector<raft::ReadState>)> on_read_states;
  // Optional: the duration of each synced log write (etcd's WAL fsync).
  std::function<void(std::chrono::nanoseconds)> on_log_saved;
};

class RaftLoop {
 public:
  explicit RaftLoop(RaftLoopOptions options);
  ~RaftLoop();  // Stop()s
  RaftLoop(const RaftLoop&) = delete;
  RaftLoop& operator=(const RaftLoop&) = delete;

  // Creates the RawNode over the log store and starts the thread.
  absl::Status Start();
  // Stops the thread; commands still queued are dropped (proposals report
  // ErrProposalDropped). Idempotent.
  void Stop();

  // Thread-safe. on_done runs on the loop thread with OK once the proposal
  // entered the log (not committed: the apply loop answers that), or an error
  // (no leader, transfer in progress, too many uncommitted bytes, stopped).
  void Propose(std::string data, std::function<void(absl::Status)> on_done);
  void ProposeConfChange(raft::ConfChange cc, std::function<void(absl::Status)> on_done);
  // Messages from peers.
  absl::Status Step(std::vector<raft::Message> messages);
  // A linearizable read; the answer arrives through on_read_states.
  void ReadIndex(std::string ctx, std::function<void(absl::Status)> on_done);
  void TransferLeader(raft::NodeId to);
  void ReportUnreachable(raft::NodeId id);
  void ReportSnapshot(raft::NodeId id, bool ok);

  // Runs `fn` on the loop thread with the node's status (progress of every
  // member when leader). Not run if the loop stops first.
  void QueryStatus(std::function<void(const raft::Status&)> fn);

  // Last known leader and term (updated by the loop after every Ready).
  raft::SoftState soft_state() const;
  raft::Term term() const;

 private:
  struct ProposeCmd {
    std::string data;
    bool conf_change = false;
    std::function<void(absl::Status)> on_done;
  };
  struct ReadCmd {
    std::string ctx;
    std::function<void(absl::Status)> on_done;
  };
  struct TransferCmd {
    raft::NodeId to;
  };
  struct StatusCmd {
    std::function<void(const raft::Status&)> fn;
  };
  struct ReportCmd {
    raft::NodeId id;
    bool unreachable;  // else a snapshot report
    bool ok;
  };
  using Command = std::variant<ProposeCmd, std::vector<raft::Message>, ReadCmd, TransferCmd,
                               ReportCmd, StatusCmd>;

  bool Enqueue(Command c);
  void Run();
  // Executes one command; a ProposeCmd here is a conf change.
  void Execute(Command& c);
  // Executes the batch in order, proposing consecutive client proposals
  // together.
  void ExecuteBatch(std::vector<Command>& batch);
  void HandleReadies();
  // Applies the conf changes among entries[begin, end) to Raft and passes
  // them (after `snapshot`, if any) to on_committed.
  void HandOverCommitted(std::optional<raft::Snapshot> snapshot,
                         const std::vector<raft::Entry>& entries, size_t begin, size_t end);

  const RaftLoopOptions options_;
  std::unique_ptr<raft::RawNode> node_;  // used by the loop thread only (after Start)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Command> inbox_;  // guarded by mu_; bounded by options_.inbox_max
  bool stopping_ = false;       // guarded by mu_
  raft::SoftState soft_state_;  // guarded by mu_
  raft::Term term_ = 0;         // guarded by mu_
  std::thread thread_;
};

}  // namespace ganglion::server
