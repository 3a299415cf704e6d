// One ganglion member: its two stores, the peer transport, the raft loop and
// the apply loop, and the operations the etcd gRPC services call. It owns the
// write path of ARCHITECTURE.md: a request becomes one log entry, is
// committed by a quorum, applied exactly once in log order on every member,
// and answered by the member that proposed it. It never speaks gRPC to
// clients itself (services.h does) and never blocks a caller's thread on the
// network: every operation completes through a callback.
//
// Data directory:
//   raft/            the Raft log (RaftLogStore)
//   state/           the MVCC state and the server's tables (StateStore)
//   snap/<index>     state checkpoints: local snapshots, and snapshots
//                    received from the leader until they are applied
//   identity         "<member id hex> <cluster id hex>": written once, when
//                    the member first starts
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "lease/lessor.h"
#include "server/config.h"
#include "server/internal.pb.h"
#include "server/key_waiters.h"
#include "server/membership.h"
#include "server/metrics.h"
#include "server/raft_loop.h"
#include "server/transport.h"
#include "server/wait.h"
#include "storage/raft_log_store.h"
#include "storage/state_store.h"
#include "watch/hub.h"

namespace ganglion::server {

// Whether a txn (in either branch, nested txns included) puts or deletes.
bool TxnHasWrites(const etcdserverpb::TxnRequest& t);

// The etcd version ganglion's API matches; Status reports it so etcd tools
// that print or compare versions behave as with etcd 3.4.
inline constexpr char kEtcdApiVersion[] = "3.4.23";

struct ServerOptions {
  // How long a request may wait for its entry to apply (etcd: 5 s plus two
  // election timeouts). 0: derived from the config.
  std::chrono::milliseconds request_timeout{0};
  // Entries kept in the log behind a snapshot, so a slightly slow follower
  // catches up from the log instead of by snapshot.
  uint64_t snapshot_catchup_entries = 5000;
  size_t waiters_max = 100000;
  // Committed batches queued for the apply loop; beyond it the raft loop
  // waits (the apply loop is behind: stop taking more from Raft).
  size_t apply_queue_max = 1024;
  // Linearizable reads waiting for a read index.
  size_t pending_reads_max = 100000;
  // Expired leases proposed for revocation per second (etcd's rate), so a
  // mass expiry never floods the log.
  uint64_t lease_revoke_rate_per_second = 1000;
  // How often the leader records long leases' remaining TTL in the log.
  std::chrono::milliseconds lease_checkpoint_interval{300000};
  // How long a joining member keeps asking peers for the members table.
  std::chrono::milliseconds join_timeout{30000};
  // Watch: etcd's progress_notify interval (10 min); tests shorten it.
  std::chrono::milliseconds watch_progress_notify_interval{std::chrono::minutes(10)};
};

// What Maintenance.Status reports.
struct MemberStatus {
  uint64_t leader = 0;
  uint64_t raft_index = 0;  // committed
  uint64_t raft_term = 0;
  uint64_t raft_applied_index = 0;
  uint64_t db_size_bytes = 0;
  bool is_learner = false;
  int64_t revision = 0;
};

class Server {
 public:
  // Opens (or bootstraps, or joins) the member described by `config` and
  // starts its threads and its peer listener.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerConfig& config,
                                                       ServerOptions options = {});
  ~Server();  // Stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Seeds config.data_dir (which must not exist or be empty) from a snapshot
  // file as a member of a new cluster made of config.initial_members: the
  // keys and revisions of the snapshot, a fresh log and members table. Every
  // member of the new cluster restores the same file.
  static absl::Status RestoreDataDir(const ServerConfig& config, const std::string& snapshot_file);

  // Fails every pending request with "server stopped" and joins every thread.
  void Stop();
  // Blocks until the member stops by itself (removed from the cluster) or
  // Stop is called; true if it was removed.
  bool WaitUntilRemovedOrStopped();

  uint64_t member_id() const { return member_id_; }
  uint64_t cluster_id() const { return cluster_id_; }
  int peer_port() const { return transport_->port(); }
  const ServerConfig& config() const { return config_; }

  // cluster_id, member_id, raft_term and the given (or current) revision.
  void FillHeader(etcdserverpb::ResponseHeader* header, int64_t revision = 0) const;
  bool HasLeader() const;
  // Tests only (--experimental-fault-injection): the peer transport's drop rules.
  void SetPeerFaultRules(PeerFaultRules rules) { transport_->SetFaultRules(std::move(rules)); }
  PeerFaultRules peer_fault_rules() const { return transport_->fault_rules(); }
  // This member is a learner (members table lookup; no store access).
  bool IsLearner() const;
  uint64_t leader() const;

  // ---- KV ----
  // Serializable reads run on the calling thread; linearizable ones wait for
  // a read index (batched: all reads waiting share one round) and run once
  // this member applied up to it.
  void Range(const etcdserverpb::RangeRequest& req,
             std::function<void(absl::StatusOr<etcdserverpb::RangeResponse>)> done);
  // Put, DeleteRange, Txn, Compaction (set in `req`; its id is assigned here).
  void Write(internal::Request req, Done done);

  // ---- Cluster ----
  using MembersDone =
      std::function<void(absl::StatusOr<std::pair<peer::Member, std::vector<peer::Member>>>)>;
  void MemberAdd(std::vector<std::string> peer_urls, bool is_learner, MembersDone done);
  void MemberRemove(uint64_t id, std::function<void(absl::Status)> done);
  void MemberUpdate(uint64_t id, std::vector<std::string> peer_urls,
                    std::function<void(absl::Status)> done);
  void MemberPromote(uint64_t id, std::function<void(absl::Status)> done);
  std::vector<peer::Member> Members() const { return membership_.List(); }

  // ---- Lease ----
  // Grant (id 0: one is generated) and Revoke go through the log; KeepAlive
  // and TimeToLive are answered by the leader (a follower forwards them).
  void LeaseGrant(int64_t id, int64_t ttl_seconds,
                  std::function<void(absl::StatusOr<std::pair<int64_t, int64_t>>)> done);
  void LeaseRevoke(int64_t id, std::function<void(absl::Status)> done);
  void LeaseRenew(int64_t id, std::function<void(absl::StatusOr<int64_t>)> done);
  void LeaseTimeToLive(int64_t id, bool keys,
                       std::function<void(absl::StatusOr<lease::TimeToLive>)> done);
  std::vector<int64_t> Leases() const { return lessor_->Ids(); }

  // One-shot waits for applied changes in a key range (Lock, Election).
  KeyWaiters& key_waiters() { return key_waiters_; }

  // ---- Maintenance ----
  MemberStatus Status() const;
  absl::StatusOr<storage::HashKVResult> HashKV(int64_t revision) const;
  void Alarm(const etcdserverpb::AlarmRequest& req,
             std::function<void(absl::StatusOr<etcdserverpb::AlarmResponse>)> done);
  std::vector<etcdserverpb::AlarmMember> Alarms() const;
  void Defragment();
  // Blocks until compacted history is physically removed (Compact --physical).
  void WaitForPhysicalCompaction() const { store()->WaitForPhysicalCompaction(); }
  void MoveLeader(uint64_t target, std::function<void(absl::Status)> done);
  // A consistent copy of the state store in `dir` (which must not exist),
  // and the raft index it holds.
  absl::StatusOr<uint64_t> CheckpointTo(const std::string& dir) const;

  Transport& transport() { return *transport_; }
  const MetricsRegistry& metrics_registry() const { return metrics_registry_; }
  MetricsRegistry& metrics_registry() { return metrics_registry_; }
  ServerMetrics& metrics() { return *metrics_; }
  // The watch hub (watch/): null before the threads start.
  watch::Hub* watch_hub() { return watch_hub_.get(); }

  // Leadership as the orchestrator's reconcilers need it. Called with
  // leading=true once this member, leader of `term`, has applied an entry of
  // that term (so every write an earlier leader committed is applied here),
  // and with leading=false as soon as it stops being leader. Called on the
  // apply or raft thread: it must not block. Set before traffic starts.
  using LeadershipFn = std::function<void(bool leading, uint64_t term)>;
  void SetLeadershipObserver(LeadershipFn fn);

 private:
  using Clock = std::chrono::steady_clock;
  struct ReadWaiter {
    Clock::time_point deadline;
    std::function<void(absl::Status)> ready;  // run once applied >= read index
  };
  // A proposal Raft dropped (no leader yet), to propose again at `at`.
  struct Retry {
    uint64_t id;
    std::string data;
    Clock::time_point deadline;
    Clock::time_point at;
  };
  struct LeaderTransfer {
    uint64_t target;
    Clock::time_point deadline;
    std::function<void(absl::Status)> done;
  };

  Server(const ServerConfig& config, ServerOptions options);
  absl::Status Open();
  absl::Status Bootstrap();
  // Writes `content` to `path` durably: a temporary file, fsync, rename.
  static absl::Status WriteFileDurably(const std::string& path, const std::string& content);
  // One AddNode entry per initial member, term 1, from index `first`.
  static std::vector<raft::Entry> BootstrapEntries(const ServerConfig& config, raft::Index first);
  absl::Status Join();
  absl::Status OpenStateStore();
  absl::Status LoadAlarms(const storage::StateStore& store);
  absl::Status LoadLeases(const storage::StateStore& store);
  // The store's subscriber: each applied revision's events, on the apply thread.
  void OnRevisionsApplied(std::vector<storage::RevisionEvents> batch);
  void ExpireAndCheckpointLeases();
  // One LeaseCheckpoint proposal: (lease id, remaining TTL seconds; 0 clears).
  void ProposeCheckpoints(const std::vector<std::pair<int64_t, int64_t>>& remaining);
  // KeepAlive on the leader: restarts the countdown, and clears a
  // checkpointed remaining TTL the renewal made stale (etcd's rule).
  absl::StatusOr<int64_t> RenewOnLeader(int64_t id);
  absl::Status RecoverFromSnapshotIfBehind();
  absl::Status StartThreads();

  // Raft loop callbacks (on its thread).
  void SendMessages(std::vector<raft::Message> messages);
  void OnCommitted(Committed committed);
  void OnLeaderChange(const raft::SoftState& soft, raft::Term term);
  void OnReadStates(std::vector<raft::ReadState> states);
  void OnSnapshotReceived(raft::Message m, std::string dir);

  // Apply loop.
  void ApplyLoop();
  void ApplyCommitted(Committed& committed);
  void RestoreSnapshot(const raft::Snapshot& snapshot);
  void MaybeSnapshot();
  void NotifyApplied(uint64_t index);
  // Blocks until this member has applied `index`, at most `timeout`; false if
  // it had not by then. For the peer service's (synchronous) lease handlers.
  bool WaitApplied(uint64_t index, std::chrono::milliseconds timeout);
  // How long the leader waits to apply what a forwarding follower applied
  // before it answers a forwarded lease query (well under the forward's 5 s).
  static constexpr std::chrono::milliseconds kForwardedLeaseApplyWait{2000};

  // Proposals and reads.
  uint64_t NextRequestId();
  Clock::time_point Deadline() const;
  void Propose(internal::Request req, Done done);
  void ProposeWithId(uint64_t id, std::string data, Clock::time_point deadline);
  void ProposeConfChange(raft::ConfChange cc, uint64_t id, Done done);
  void LinearizableWait(std::function<void(absl::Status)> ready);
  void IssueReadIndex();
  // The peer transport's counters, read at scrape time.
  void RegisterTransportMetrics();
  // May propose the NOSPACE alarm.
  absl::Status CheckQuota(const internal::Request& req);
  bool NoSpaceAlarmed() const;

  // Housekeeping thread: deadlines, read retries, publishing attributes.
  void TimerLoop();
  void PublishAttributesIfNeeded();

  std::string SnapDir(uint64_t index) const;
  std::shared_ptr<storage::StateStore> store() const;

  const ServerConfig config_;
  const ServerOptions options_;
  MetricsRegistry metrics_registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::chrono::milliseconds request_timeout_{0};
  uint64_t member_id_ = 0;
  uint64_t cluster_id_ = 0;

  std::unique_ptr<storage::RaftLogStore> log_store_;
  // Replaced when a snapshot from the leader is applied. Readers copy the
  // pointer under store_mu_ (shared) and keep the store alive while they use
  // it; the apply loop swaps it under store_mu_ (exclusive).
  mutable std::shared_mutex store_mu_;
  std::shared_ptr<storage::StateStore> store_;  // guarded by store_mu_

  Membership membership_;
  std::unique_ptr<lease::Lessor> lessor_;
  KeyWaiters key_waiters_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<RaftLoop> raft_loop_;
  Waiters waiters_;

  // Apply queue: the raft loop pushes, the apply loop pops.
  std::mutex apply_mu_;
  std::condition_variable apply_cv_;       // signals the apply loop
  std::condition_variable apply_room_cv_;  // signals the raft loop
  std::deque<Committed> apply_queue_;      // guarded by apply_mu_; <= apply_queue_max
  bool stopping_ = false;                  // guarded by apply_mu_
  bool removed_ = false;                   // guarded by apply_mu_
  std::condition_variable stopped_cv_;     // signalled with apply_mu_ on stop/removal

  // Owned by the apply loop thread.
  raft::ConfState conf_state_;
  uint64_t snapshot_index_ = 0;
  bool snapshot_flush_started_ = false;  // for the next snapshot

  // Applied-index waiters (linearizable reads) and the read-index round.
  mutable std::mutex read_mu_;
  std::atomic<uint64_t> applied_index_{0};
  // Called with OK once the index is applied, or with an error on Stop.
  std::multimap<uint64_t, std::function<void(absl::Status)>> applied_waiters_;  // by read_mu_
  std::vector<ReadWaiter> reads_pending_;   // guarded by read_mu_; waiting for the next round
  std::vector<ReadWaiter> reads_inflight_;  // guarded by read_mu_; in the current round
  std::string read_ctx_;                    // guarded by read_mu_; the current round's ctx
  Clock::time_point read_issued_at_;        // guarded by read_mu_
  uint64_t read_seq_ = 0;                   // guarded by read_mu_

  // Leadership as last reported by the raft loop.
  std::atomic<uint64_t> leader_{0};
  std::atomic<uint64_t> term_{0};
  // The term whose leadership was last reported to the observer (0: none
  // or stepped down). Guarded by leadership_mu_, as is the observer.
  std::mutex leadership_mu_;
  uint64_t leading_term_ = 0;
  LeadershipFn leadership_observer_;
  std::atomic<uint64_t> applied_term_{0};  // term of the last applied entry
  // On the apply thread, after a batch: reports leadership of the current
  // term once an entry of it is applied.
  void MaybeReportLeading(raft::Term newest_applied_term);

  std::atomic<uint64_t> committed_index_{0};
  std::atomic<bool> publish_inflight_{false};
  // Lease housekeeping, on the timer thread only.
  double revoke_budget_ = 0;
  lease::Clock::time_point revoke_budget_at_{};
  lease::Clock::time_point next_checkpoint_batch_{};

  // Alarms (NOSPACE, CORRUPT) as applied: (member id, alarm type).
  mutable std::mutex alarm_mu_;
  std::map<std::pair<uint64_t, int>, bool> alarms_;  // guarded by alarm_mu_

  std::atomic<uint64_t> request_seq_{0};

  // Watch: subscribed to store_ before the apply loop starts, pointed at the
  // new store after a snapshot is installed (apply loop), stopped after it.
  std::unique_ptr<watch::Hub> watch_hub_;

  std::thread apply_thread_;
  std::thread timer_thread_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool timer_stop_ = false;                // guarded by timer_mu_
  std::vector<Retry> retries_;             // guarded by timer_mu_; <= waiters_max
  std::vector<LeaderTransfer> transfers_;  // guarded by timer_mu_
  std::atomic<bool> stopped_{false};
};

}  // namespace ganglion::server
