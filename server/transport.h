// The Raft peer transport: carries raft::Messages between the members of one
// cluster over gRPC (service ganglion.peer.Peer), and streams snapshot
// checkpoints to followers. It never interprets messages beyond routing by
// `to`, never blocks the raft loop (Send queues, and starts a write on an
// idle stream without waiting for it), and never delivers a frame from
// another cluster. Delivery is best effort: Raft retransmits, so a full
// queue or a broken stream drops messages and counts them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft/types.h"
#include "server/peer.pb.h"

namespace grpc {
class Server;
class ClientContext;
}  // namespace grpc

namespace ganglion::server {

struct TransportOptions {
  raft::NodeId self_id = raft::kNoNode;
  uint64_t cluster_id = 0;
  // host:port to serve peers on; port 0 picks a free one (see port()).
  std::string listen_addr;
  // Incoming snapshots are written to <snapshot_dir>/incoming-<index>-<from>.
  std::string snapshot_dir;

  // Called from gRPC's callback threads, one call per received frame, in
  // order per sending peer; calls for different peers may run concurrently.
  // Must not block: the thread serves every call of the process.
  std::function<void(std::vector<raft::Message>)> on_messages;
  // Called once a snapshot's files are all on disk and verified. The
  // directory then belongs to the callee.
  std::function<void(raft::Message, std::string dir)> on_snapshot;
  // Called from a peer's link thread when a stream to it fails or cannot
  // be opened (at most once per reconnect attempt).
  std::function<void(raft::NodeId)> on_unreachable;
  // Answers a joining member's Members call (from a gRPC server thread).
  // Unset: the call fails with UNAVAILABLE.
  std::function<peer::MembersReply()> on_members;
  // Serve a follower's forwarded lease calls (this member is the leader).
  std::function<absl::StatusOr<int64_t>(const peer::LeaseRenewRequest&)> on_lease_renew;
  std::function<absl::StatusOr<peer::LeaseTtlReply>(const peer::LeaseTtlRequest&)> on_lease_ttl;

  size_t queue_messages_max = 4096;           // per peer; beyond it Send drops
  size_t batch_bytes_max = 4 * 1024 * 1024;   // one frame; at least one message
  size_t frame_bytes_max = 64 * 1024 * 1024;  // largest frame the server accepts
  size_t snapshot_chunk_bytes = 1024 * 1024;
  size_t snapshot_sends_max = 4;  // concurrent outgoing transfers
  std::chrono::milliseconds reconnect_backoff_min{50};
  std::chrono::milliseconds reconnect_backoff_max{2000};
};

struct TransportMetrics {
  uint64_t sent_frames = 0;       // batches written
  uint64_t sent_messages = 0;     // written to a peer stream
  uint64_t dropped_messages = 0;  // queue full, unknown peer, or lost with a failed stream
  uint64_t stream_failures = 0;   // streams that broke or could not be opened
  uint64_t reconnects = 0;        // streams opened after a failure
  uint64_t received_messages = 0;
  uint64_t refused_frames = 0;  // wrong cluster or member id, undecodable
  uint64_t snapshot_bytes_sent = 0;
  uint64_t snapshot_bytes_received = 0;
  uint64_t snapshots_sent = 0;
  uint64_t snapshots_failed = 0;        // outgoing transfers that ended with done(false)
  uint64_t fault_dropped_messages = 0;  // by the fault-injection rules (tests only)
};

// Test-only fault injection (ganglion --experimental-fault-injection): the
// peers whose traffic this member drops, as a network partition would. Rules
// are per direction, so one-way partitions can be built from them.
struct PeerFaultRules {
  std::set<raft::NodeId> drop_to;    // messages, snapshots and lease calls to them
  std::set<raft::NodeId> drop_from;  // frames and snapshots from them
  bool operator==(const PeerFaultRules&) const = default;
};
// "drop_to=<hex id>,<hex id>&drop_from=<hex id>": the query string of PUT
// /debug/fault. A missing parameter means an empty set.
absl::StatusOr<PeerFaultRules> ParsePeerFaultRules(std::string_view query);
// The same form, for GET /debug/fault and the log.
std::string FormatPeerFaultRules(const PeerFaultRules& rules);

class Transport {
 public:
  explicit Transport(TransportOptions options);
  ~Transport();  // Stop()s
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Starts serving peers. Fails if the address cannot be bound.
  absl::Status Start();
  // The bound port (valid after Start).
  int port() const { return port_; }

  // url: http(s)://host:port of the peer's --listen-peer-urls (TLS is not
  // implemented yet: https is dialled in plain text). Replaces an earlier
  // address for the same id.
  absl::Status AddPeer(raft::NodeId id, const std::string& url);
  void RemovePeer(raft::NodeId id);

  // Enqueues each message for its `to` peer; never blocks on the network.
  void Send(std::vector<raft::Message> messages);
  // Streams a MsgSnap plus the regular files of checkpoint_dir to m.to on its
  // own call. done(ok) runs exactly once, from a transport thread (or inline
  // if the transfer cannot start); ok means the receiver verified every file
  // and accepted the snapshot.
  void SendSnapshot(const raft::Message& m, const std::string& checkpoint_dir,
                    std::function<void(bool ok)> done);

  // Cancels every stream and transfer and joins every thread; no callback
  // runs after it returns (pending done callbacks run with ok = false before
  // it does). Idempotent.
  void Stop();

  TransportMetrics metrics() const;

  // Replaces the fault-injection rules (empty rules: deliver everything).
  void SetFaultRules(PeerFaultRules rules);
  PeerFaultRules fault_rules() const;

  // Forward a lease keep-alive / time-to-live query to peer `to` (the
  // leader), which answers once it has applied `min_applied_index`. `done`
  // runs once, on a gRPC thread, with the leader's answer or UNAVAILABLE
  // when it cannot be reached.
  void ForwardLeaseRenew(raft::NodeId to, int64_t id, uint64_t min_applied_index,
                         std::function<void(absl::StatusOr<int64_t>)> done);
  void ForwardLeaseTimeToLive(raft::NodeId to, int64_t id, bool keys, uint64_t min_applied_index,
                              std::function<void(absl::StatusOr<peer::LeaseTtlReply>)> done);

  // Asks the member at `url` (a peer URL) for the cluster id and members
  // table, as a member joining an existing cluster must before it starts.
  static absl::StatusOr<peer::MembersReply> FetchMembers(const std::string& url,
                                                         std::chrono::milliseconds timeout);

 private:
  struct PeerLink;
  class PeerStream;
  struct SnapshotSend;
  class Service;

  // A link's connection keeper: opens its stream when there is something to
  // send, waits for it to end, backs off, opens the next.
  void RunLink(const std::shared_ptr<PeerLink>& link);
  // Starts writing the link's queue as one frame if its stream is open and
  // idle. With link.mu held.
  void WriteNextLocked(PeerLink& link);
  void RunSnapshotSend(std::shared_ptr<PeerLink> link, raft::Message m, std::string dir,
                       std::function<void(bool)> done);
  static void StopLink(PeerLink& link);
  // The link to `to`, or null (unknown peer, or stopped).
  std::shared_ptr<PeerLink> LinkFor(raft::NodeId to) const;

  const TransportOptions options_;
  int port_ = 0;  // written once by Start

  // Set by Start under mu_ while !stopped_; Stop uses them only after it set
  // stopped_, so they never change while Stop reads them.
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;

  mutable std::mutex mu_;  // lock order: mu_ before any PeerLink::mu or snapshot_mu_
  std::map<raft::NodeId, std::shared_ptr<PeerLink>> peers_;    // guarded by mu_
  std::vector<std::unique_ptr<SnapshotSend>> snapshot_sends_;  // guarded by mu_
  bool stopped_ = false;                                       // guarded by mu_

  // Guards snapshot_contexts_ and snapshot_stopping_: the client contexts of
  // transfers in flight, so Stop can cancel them.
  std::mutex snapshot_mu_;
  std::vector<grpc::ClientContext*> snapshot_contexts_;
  bool snapshot_stopping_ = false;

  // Cheap to check on every frame; the rules themselves under fault_mu_.
  bool DropsTo(raft::NodeId id) const;
  bool DropsFrom(raft::NodeId id) const;
  std::atomic<bool> faults_active_{false};
  mutable std::mutex fault_mu_;  // leaf lock
  PeerFaultRules fault_rules_;   // guarded by fault_mu_

  struct Counters {
    std::atomic<uint64_t> sent_frames{0}, sent_messages{0}, dropped_messages{0}, stream_failures{0},
        reconnects{0}, received_messages{0}, refused_frames{0}, snapshot_bytes_sent{0},
        snapshot_bytes_received{0}, snapshots_sent{0}, snapshots_failed{0},
        fault_dropped_messages{0};
  };
  Counters counters_;  // lock-free
};

}  // namespace ganglion::server
