// Server lifecycle (open, bootstrap, join), proposals and their waiters,
// linearizable reads, and the cluster and maintenance operations. The apply
// loop is in apply.cc.
#include "server/server.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "raft/raft.h"
#include "server/errors.h"

namespace ganglion::server {

namespace fs = std::filesystem;

namespace {

std::string Hex(uint64_t v) {
  return absl::StrFormat("%x", v);
}

}  // namespace

// Writes `content` to `path` durably: a temporary file, fsync, rename.
absl::Status Server::WriteFileDurably(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return absl::InternalError(absl::StrCat("create ", tmp));
  bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
            std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) return absl::InternalError(absl::StrCat("write ", tmp));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

bool TxnHasWrites(const etcdserverpb::TxnRequest& t) {
  for (const auto* ops : {&t.success(), &t.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_put() || op.has_request_delete_range()) return true;
      if (op.has_request_txn() && TxnHasWrites(op.request_txn())) return true;
    }
  }
  return false;
}

// ---- lifecycle ----

Server::Server(const ServerConfig& config, ServerOptions options)
    : config_(config), options_(options), waiters_(options.waiters_max) {
  ServerMetricsSources sources;
  sources.db_total_size_bytes = [this] {
    auto st = store();
    return st ? static_cast<double>(st->SizeBytes()) : 0.0;
  };
  sources.db_total_size_in_use_bytes = sources.db_total_size_bytes;
  metrics_ = std::make_unique<ServerMetrics>(&metrics_registry_, std::move(sources));
  metrics_->quota_backend_bytes->Set(
      config_.quota_backend_bytes < 0 ? 0.0
                                      : static_cast<double>(config_.QuotaBackendBytesEffective()));
  // etcd's minimum TTL: one and a half election timeouts, rounded up to
  // whole seconds, so a lease outlives a leader election.
  lessor_ = std::make_unique<lease::Lessor>(
      static_cast<int64_t>((3 * config_.election_timeout_ms / 2 + 999) / 1000),
      options_.lease_checkpoint_interval);
  request_timeout_ = options_.request_timeout.count() > 0
                         ? options_.request_timeout
                         : std::chrono::milliseconds(5000 + 2 * config_.election_timeout_ms);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config,
                                                      ServerOptions options) {
  std::unique_ptr<Server> s(new Server(config, options));
  if (auto st = s->Open(); !st.ok()) return st;
  if (auto st = s->StartThreads(); !st.ok()) {
    s->Stop();
    return st;
  }
  return s;
}

Server::~Server() {
  Stop();
}

std::string Server::SnapDir(uint64_t index) const {
  return absl::StrFormat("%s/snap/%016x", config_.data_dir, index);
}

std::shared_ptr<storage::StateStore> Server::store() const {
  std::shared_lock lock(store_mu_);
  return store_;
}

absl::Status Server::Open() {
  std::error_code ec;
  fs::create_directories(config_.data_dir + "/snap", ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", config_.data_dir, ": ", ec.message()));

  // identity: "<member hex> <cluster hex> <new|join>".
  const std::string identity_path = config_.data_dir + "/identity";
  bool from_new_cluster = false;
  if (std::ifstream in(identity_path); in) {
    std::string member, cluster, origin;
    in >> member >> cluster >> origin;
    if (!absl::SimpleHexAtoi(member, &member_id_) || !absl::SimpleHexAtoi(cluster, &cluster_id_)) {
      return absl::DataLossError(absl::StrCat("corrupt ", identity_path));
    }
    from_new_cluster = origin == "new";
    spdlog::info("event=restart member={} cluster={} data_dir={}", Hex(member_id_),
                 Hex(cluster_id_), config_.data_dir);
  } else if (config_.IsNewCluster()) {
    member_id_ = config_.member_id;
    cluster_id_ = config_.cluster_id;
    from_new_cluster = true;
    if (auto s = WriteFileDurably(identity_path,
                                  absl::StrCat(Hex(member_id_), " ", Hex(cluster_id_), " new\n"));
        !s.ok()) {
      return s;
    }
  } else {
    if (auto s = Join(); !s.ok()) return s;
    if (auto s = WriteFileDurably(identity_path,
                                  absl::StrCat(Hex(member_id_), " ", Hex(cluster_id_), " join\n"));
        !s.ok()) {
      return s;
    }
  }

  storage::RaftLogStoreOptions log_options;
  log_options.sync = !config_.unsafe_no_fsync;
  log_options.write_ahead_log = !config_.unsafe_no_fsync;
  auto log = storage::RaftLogStore::Open(config_.data_dir + "/raft", log_options);
  if (!log.ok()) return log.status();
  log_store_ = *std::move(log);
  // A member of a new cluster whose log is still empty (first start, or a
  // crash before the bootstrap entries were written) writes them now.
  auto snap = log_store_->GetSnapshot();
  if (!snap.ok()) return snap.status();
  if (from_new_cluster && log_store_->LastIndex() == 0 && snap->metadata.index == 0) {
    if (auto s = Bootstrap(); !s.ok()) return s;
  }
  if (auto s = OpenStateStore(); !s.ok()) return s;
  if (auto s = RecoverFromSnapshotIfBehind(); !s.ok()) return s;
  auto st = store();
  if (auto s = membership_.Load(*st); !s.ok()) return s;
  if (auto s = LoadAlarms(*st); !s.ok()) return s;
  if (auto s = LoadLeases(*st); !s.ok()) return s;
  if (membership_.IsRemoved(member_id_)) {
    return absl::FailedPreconditionError(kErrMemberRemoved);
  }
  return absl::OkStatus();
}

std::vector<raft::Entry> Server::BootstrapEntries(const ServerConfig& config, raft::Index first) {
  std::vector<raft::Entry> entries;
  for (const InitialMember& im : config.initial_members) {
    internal::ConfChangeContext ctx;
    peer::Member* m = ctx.mutable_member();
    m->set_id(im.id);
    m->set_name(im.name);
    for (const Url& u : im.peer_urls) m->add_peer_urls(u.ToString());
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeSingle::Type::kAddNode, im.id});
    cc.context = ctx.SerializeAsString();
    raft::Entry e;
    e.term = 1;
    e.index = first + entries.size();
    e.type = raft::EntryType::kConfChange;
    e.data = raft::EncodeConfChange(cc);
    entries.push_back(std::move(e));
  }
  return entries;
}

absl::Status Server::Bootstrap() {
  // Every member of the new cluster writes the same entries 1..N (one
  // AddNode per initial member, term 1) and marks them committed, as etcd
  // does: the log alone then describes the membership, so a member added
  // later learns the initial members by replicating it.
  raft::ConfState cs;
  for (const InitialMember& im : config_.initial_members) cs.voters.push_back(im.id);
  std::vector<raft::Entry> entries = BootstrapEntries(config_, 1);
  if (auto s = log_store_->SetConfState(cs); !s.ok()) return s;
  raft::HardState hs;
  hs.term = 1;
  hs.commit = entries.size();
  spdlog::info("event=bootstrap member={} cluster={} members={}", Hex(member_id_), Hex(cluster_id_),
               entries.size());
  return log_store_->Save(hs, entries, std::nullopt);
}

absl::Status Server::Join() {
  // Own peer URLs, to find this member's id in the cluster's table (the
  // operator added it with `member add` before starting it).
  std::vector<std::string> own;
  for (const Url& u : config_.initial_advertise_peer_urls) own.push_back(u.ToString());
  std::sort(own.begin(), own.end());
  auto give_up = Clock::now() + options_.join_timeout;
  absl::Status last = absl::UnavailableError("no peer in --initial-cluster to ask");
  while (Clock::now() < give_up) {
    for (const InitialMember& im : config_.initial_members) {
      if (im.name == config_.name) continue;
      for (const Url& u : im.peer_urls) {
        auto reply = Transport::FetchMembers(u.ToString(), std::chrono::seconds(2));
        if (!reply.ok()) {
          last = reply.status();
          continue;
        }
        for (const peer::Member& m : reply->members()) {
          std::vector<std::string> urls(m.peer_urls().begin(), m.peer_urls().end());
          std::sort(urls.begin(), urls.end());
          if (urls == own) {
            member_id_ = m.id();
            cluster_id_ = reply->cluster_id();
            spdlog::info("event=join member={} cluster={} via={}", Hex(member_id_),
                         Hex(cluster_id_), u.ToString());
            return absl::OkStatus();
          }
        }
        return absl::FailedPreconditionError(absl::StrCat(
            "this member's peer URLs (", absl::StrJoin(own, ","),
            ") are not in the cluster's member list; add it with `etcdctl member add` first"));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return absl::UnavailableError(
      absl::StrCat("cannot reach any member of the existing cluster: ", last.message()));
}

absl::Status Server::OpenStateStore() {
  storage::StateStoreOptions o;
  o.max_txn_ops = static_cast<int64_t>(config_.max_txn_ops);
  o.max_request_bytes = config_.max_request_bytes;
  o.initial_revision = 1;
  auto st = storage::StateStore::Open(config_.data_dir + "/state", o);
  if (!st.ok()) return st.status();
  (*st)->Subscribe(
      [this](std::vector<storage::RevisionEvents> batch) { OnRevisionsApplied(std::move(batch)); });
  std::unique_lock lock(store_mu_);
  store_ = std::shared_ptr<storage::StateStore>(std::move(*st));
  return absl::OkStatus();
}

absl::Status Server::RecoverFromSnapshotIfBehind() {
  // The log may hold a snapshot from the leader that the state store never
  // got to apply (a crash between the two): apply it before starting.
  auto snap = log_store_->GetSnapshot();
  if (!snap.ok()) return snap.status();
  const uint64_t index = snap->metadata.index;
  if (index == 0 || store()->applied_index() >= index) return absl::OkStatus();
  spdlog::warn("event=snapshot_recovery index={} state_applied={}", index,
               store()->applied_index());
  {
    std::unique_lock lock(store_mu_);
    store_.reset();
  }
  if (auto s =
          storage::StateStore::RestoreFromCheckpoint(SnapDir(index), config_.data_dir + "/state");
      !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("log is at snapshot ", index, " but its state is missing: ", s.message()));
  }
  return OpenStateStore();
}

absl::Status Server::StartThreads() {
  auto initial = log_store_->GetInitialState();
  if (!initial.ok()) return initial.status();
  auto snap = log_store_->GetSnapshot();
  if (!snap.ok()) return snap.status();
  conf_state_ = snap->metadata.index > 0 ? snap->metadata.conf_state : initial->conf_state;
  snapshot_index_ = snap->metadata.index;
  applied_index_ = store()->applied_index();

  RaftLoopOptions ro;
  ro.raft.id = member_id_;
  ro.raft.election_ticks =
      static_cast<int>(config_.election_timeout_ms / config_.heartbeat_interval_ms);
  ro.raft.heartbeat_ticks = 1;
  ro.raft.storage = log_store_.get();
  // Applied 0: Raft hands over every committed entry after its snapshot; the
  // apply loop skips what the state store already has but re-applies the
  // configuration changes among them (Raft's membership is not persisted
  // apart from snapshots).
  ro.raft.applied = 0;
  ro.raft.random_seed = member_id_ ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  ro.raft.event_sink = [id = member_id_](const std::string& line) {
    spdlog::info("event=raft member={} {}", Hex(id), line);
  };
  ro.log_store = log_store_.get();
  ro.tick_interval = std::chrono::milliseconds(config_.heartbeat_interval_ms);
  ro.send = [this](std::vector<raft::Message> m) { SendMessages(std::move(m)); };
  ro.on_committed = [this](Committed c) { OnCommitted(std::move(c)); };
  ro.on_leader_change = [this](const raft::SoftState& s, raft::Term t) { OnLeaderChange(s, t); };
  ro.on_read_states = [this](std::vector<raft::ReadState> r) { OnReadStates(std::move(r)); };
  ro.on_log_saved = [this](std::chrono::nanoseconds d) {
    metrics_->wal_fsync_duration_seconds->Observe(std::chrono::duration<double>(d).count());
  };
  raft_loop_ = std::make_unique<RaftLoop>(std::move(ro));

  TransportOptions to;
  to.self_id = member_id_;
  to.cluster_id = cluster_id_;
  to.listen_addr = config_.listen_peer_urls.at(0).HostPort();
  to.snapshot_dir = config_.data_dir + "/snap";
  to.on_messages = [this](std::vector<raft::Message> m) { (void)raft_loop_->Step(std::move(m)); };
  to.on_snapshot = [this](raft::Message m, std::string dir) {
    OnSnapshotReceived(std::move(m), std::move(dir));
  };
  to.on_unreachable = [this](raft::NodeId id) { raft_loop_->ReportUnreachable(id); };
  to.on_members = [this] {
    peer::MembersReply reply;
    reply.set_cluster_id(cluster_id_);
    for (const peer::Member& m : membership_.List()) *reply.add_members() = m;
    return reply;
  };
  to.on_lease_renew = [this](const peer::LeaseRenewRequest& req) -> absl::StatusOr<int64_t> {
    if (leader_.load() != member_id_) return absl::FailedPreconditionError(kErrNotLeader);
    if (!WaitApplied(req.min_applied_index(), kForwardedLeaseApplyWait)) {
      return absl::UnavailableError(kErrTimeout);
    }
    return RenewOnLeader(req.id());
  };
  to.on_lease_ttl =
      [this](const peer::LeaseTtlRequest& req) -> absl::StatusOr<peer::LeaseTtlReply> {
    if (leader_.load() != member_id_) return absl::FailedPreconditionError(kErrNotLeader);
    if (!WaitApplied(req.min_applied_index(), kForwardedLeaseApplyWait)) {
      return absl::UnavailableError(kErrTimeout);
    }
    auto t = lessor_->GetTimeToLive(req.id(), req.keys(), lease::Clock::now());
    if (!t.ok()) return t.status();
    peer::LeaseTtlReply reply;
    reply.set_granted_ttl(t->granted_ttl_seconds);
    reply.set_ttl(t->ttl_seconds);
    for (const std::string& k : t->keys) reply.add_keys(k);
    return reply;
  };
  transport_ = std::make_unique<Transport>(std::move(to));
  if (auto s = transport_->Start(); !s.ok()) return s;
  RegisterTransportMetrics();

  // Peers: the members table; before the bootstrap entries are applied, the
  // initial cluster.
  if (membership_.size() > 0) {
    for (const peer::Member& m : membership_.List()) {
      if (m.id() != member_id_ && !m.peer_urls().empty()) {
        (void)transport_->AddPeer(m.id(), m.peer_urls(0));
      }
    }
  } else {
    for (const InitialMember& im : config_.initial_members) {
      if (im.id != member_id_ && !im.peer_urls.empty()) {
        (void)transport_->AddPeer(im.id, im.peer_urls[0].ToString());
      }
    }
  }

  // Watch: before anything is applied, so the hub sees every revision.
  watch::HubOptions wo;
  wo.max_request_bytes = config_.max_request_bytes;
  wo.progress_notify_interval = options_.watch_progress_notify_interval;
  watch_hub_ = std::make_unique<watch::Hub>(store(), wo);

  if (auto s = raft_loop_->Start(); !s.ok()) return s;
  apply_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "apply");
    ApplyLoop();
  });
  timer_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "timers");
    TimerLoop();
  });
  spdlog::info("event=started member={} name={} cluster={} peer_listen={} applied={}",
               Hex(member_id_), config_.name, Hex(cluster_id_), transport_->port(),
               applied_index_.load());
  return absl::OkStatus();
}

void Server::RegisterTransportMetrics() {
  const auto add = [this](const std::string& name, const std::string& help,
                          uint64_t TransportMetrics::*field) {
    metrics_registry_.AddGaugeFunc(
        name, help, [this, field] { return static_cast<double>(transport_->metrics().*field); });
  };
  add("ganglion_network_peer_sent_messages_total", "Raft messages written to peer streams.",
      &TransportMetrics::sent_messages);
  add("ganglion_network_peer_sent_frames_total",
      "Frames (batches of raft messages) written to peer streams.", &TransportMetrics::sent_frames);
  add("ganglion_network_peer_received_messages_total", "Raft messages received from peers.",
      &TransportMetrics::received_messages);
  add("ganglion_network_peer_dropped_messages_total",
      "Raft messages dropped: peer queue full, unknown peer, or lost with a failed stream.",
      &TransportMetrics::dropped_messages);
}

void Server::Stop() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard lock(timer_mu_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
  // The transport first: nothing new reaches the raft loop, and no snapshot
  // callback runs after this.
  if (transport_) transport_->Stop();
  {
    std::lock_guard lock(apply_mu_);
    stopping_ = true;
  }
  apply_cv_.notify_all();
  apply_room_cv_.notify_all();
  stopped_cv_.notify_all();
  if (raft_loop_) raft_loop_->Stop();
  if (apply_thread_.joinable()) apply_thread_.join();
  if (watch_hub_) watch_hub_->Stop();  // watch: no Apply runs any more
  waiters_.FailAll(Stopped());
  std::vector<ReadWaiter> reads;
  std::multimap<uint64_t, std::function<void(absl::Status)>> waiting_apply;
  {
    std::lock_guard lock(read_mu_);
    reads.swap(reads_pending_);
    for (ReadWaiter& r : reads_inflight_) reads.push_back(std::move(r));
    reads_inflight_.clear();
    waiting_apply.swap(applied_waiters_);
  }
  for (ReadWaiter& r : reads) r.ready(Stopped());
  // Reads whose index will never be applied now: answered, not dropped (a
  // dropped one would leave its gRPC call open and hold up the shutdown).
  for (auto& [index, ready] : waiting_apply) ready(Stopped());
  std::vector<LeaderTransfer> transfers;
  {
    std::lock_guard lock(timer_mu_);
    transfers.swap(transfers_);
  }
  for (LeaderTransfer& t : transfers) t.done(Stopped());
  spdlog::info("event=stopped member={}", Hex(member_id_));
}

bool Server::WaitUntilRemovedOrStopped() {
  std::unique_lock lock(apply_mu_);
  stopped_cv_.wait(lock, [&] { return stopping_ || removed_; });
  return removed_;
}

// ---- raft loop callbacks ----

void Server::SendMessages(std::vector<raft::Message> messages) {
  std::vector<raft::Message> plain;
  plain.reserve(messages.size());
  for (raft::Message& m : messages) {
    if (m.type != raft::MessageType::kSnap || !m.snapshot) {
      plain.push_back(std::move(m));
      continue;
    }
    const std::string dir = SnapDir(m.snapshot->metadata.index);
    const raft::NodeId to = m.to;
    if (!fs::is_directory(dir)) {
      spdlog::error("event=snapshot_missing index={} to={}", m.snapshot->metadata.index, Hex(to));
      raft_loop_->ReportSnapshot(to, false);
      continue;
    }
    spdlog::info("event=snapshot_send index={} to={}", m.snapshot->metadata.index, Hex(to));
    transport_->SendSnapshot(m, dir, [this, to](bool ok) {
      spdlog::info("event=snapshot_sent to={} ok={}", Hex(to), ok);
      raft_loop_->ReportSnapshot(to, ok);
    });
  }
  if (!plain.empty()) transport_->Send(std::move(plain));
}

void Server::OnCommitted(Committed committed) {
  std::unique_lock lock(apply_mu_);
  apply_room_cv_.wait(lock,
                      [&] { return stopping_ || apply_queue_.size() < options_.apply_queue_max; });
  if (stopping_) return;
  apply_queue_.push_back(std::move(committed));
  apply_cv_.notify_one();
}

void Server::OnLeaderChange(const raft::SoftState& soft, raft::Term term) {
  term_ = term;
  const uint64_t previous = leader_.exchange(soft.lead);
  if (previous == soft.lead) return;
  spdlog::info("event=leader_changed member={} leader={} previous={} term={}", Hex(member_id_),
               Hex(soft.lead), Hex(previous), term);
  if (soft.lead == member_id_) {
    // Every lease gets an election timeout on top of what it had left: the
    // old leader may have renewed it just before it lost touch.
    lessor_->Promote(lease::Clock::now(), std::chrono::milliseconds(config_.election_timeout_ms));
  } else if (previous == member_id_) {
    lessor_->Demote();
    // Under the lock, so a report from the apply thread cannot overtake it.
    std::lock_guard lock(leadership_mu_);
    const uint64_t was_leading = std::exchange(leading_term_, 0);
    if (was_leading != 0 && leadership_observer_) leadership_observer_(false, was_leading);
  }
  metrics_->has_leader->Set(soft.lead != 0 ? 1 : 0);
  metrics_->is_leader->Set(soft.lead == member_id_ ? 1 : 0);
  if (soft.lead != 0) metrics_->leader_changes_seen_total->Inc();
  if (previous == 0) return;
  // What was proposed under the old leader may or may not commit: tell the
  // clients now so they retry, instead of letting them run into the timeout.
  waiters_.FailAll(LeaderChanged());
  std::vector<ReadWaiter> failed;
  {
    std::lock_guard lock(read_mu_);
    failed.swap(reads_inflight_);
    read_ctx_.clear();
    if (!reads_pending_.empty() && soft.lead != 0) IssueReadIndex();
  }
  for (ReadWaiter& r : failed) r.ready(LeaderChanged());
}

void Server::SetLeadershipObserver(LeadershipFn fn) {
  {
    std::lock_guard lock(leadership_mu_);
    leadership_observer_ = std::move(fn);
    leading_term_ = 0;
  }
  // Already leading with an entry of the term applied: report it now, as
  // no further entry may come.
  MaybeReportLeading(applied_term_.load());
}

void Server::MaybeReportLeading(raft::Term newest_applied_term) {
  applied_term_.store(newest_applied_term);
  const uint64_t term = term_.load();
  if (newest_applied_term != term) return;
  // The leader is checked again under the lock: a step-down that runs
  // before this sees leading_term_ unset and this then sees the new leader;
  // one that runs after sees leading_term_ set and reports the step-down.
  std::lock_guard lock(leadership_mu_);
  if (leader_.load() != member_id_ || leading_term_ == term || !leadership_observer_) return;
  leading_term_ = term;
  spdlog::info("event=leading member={} term={}", Hex(member_id_), term);
  leadership_observer_(true, term);
}

void Server::OnReadStates(std::vector<raft::ReadState> states) {
  std::vector<std::function<void(absl::Status)>> ready_now;
  {
    std::lock_guard lock(read_mu_);
    for (const raft::ReadState& rs : states) {
      if (read_ctx_.empty() || rs.request_ctx != read_ctx_) continue;
      for (ReadWaiter& r : reads_inflight_) {
        if (applied_index_.load() >= rs.index) {
          ready_now.push_back(std::move(r.ready));
        } else {
          applied_waiters_.emplace(rs.index, std::move(r.ready));
        }
      }
      reads_inflight_.clear();
      read_ctx_.clear();
      if (!reads_pending_.empty()) IssueReadIndex();
    }
  }
  for (auto& r : ready_now) r(absl::OkStatus());
}

void Server::OnSnapshotReceived(raft::Message m, std::string dir) {
  if (!m.snapshot) return;
  const std::string target = SnapDir(m.snapshot->metadata.index);
  std::error_code ec;
  fs::remove_all(target, ec);
  fs::rename(dir, target, ec);
  if (ec) {
    spdlog::error("event=snapshot_receive_failed index={} error=\"{}\"", m.snapshot->metadata.index,
                  ec.message());
    fs::remove_all(dir, ec);
    return;
  }
  spdlog::info("event=snapshot_received index={} from={}", m.snapshot->metadata.index, Hex(m.from));
  std::vector<raft::Message> one;
  one.push_back(std::move(m));
  (void)raft_loop_->Step(std::move(one));
}

// ---- proposals ----

uint64_t Server::NextRequestId() {
  // High 16 bits: the member; low 48: a counter started from the clock, so
  // ids stay unique across restarts of this member.
  static constexpr uint64_t kLowMask = (uint64_t{1} << 48) - 1;
  uint64_t seq = request_seq_.fetch_add(1);
  if (seq == 0) {
    uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
    uint64_t start = (ms & ((uint64_t{1} << 40) - 1)) << 8;
    uint64_t expected = 1;
    // Only the first caller seeds; later ones keep counting from there.
    request_seq_.compare_exchange_strong(expected, start + 1);
    seq = start;
  }
  return ((member_id_ & 0xffff) << 48) | (seq & kLowMask);
}

Server::Clock::time_point Server::Deadline() const {
  return Clock::now() + request_timeout_;
}

void Server::Propose(internal::Request req, Done user_done) {
  Done done = [this, user_done = std::move(user_done)](Outcome o) {
    if (!o.ok()) metrics_->proposals_failed_total->Inc();
    user_done(std::move(o));
  };
  const uint64_t id = NextRequestId();
  req.set_id(id);
  std::string data = req.SerializeAsString();
  if (data.size() > config_.max_request_bytes) {
    done(absl::InvalidArgumentError(kErrRequestTooLarge));
    return;
  }
  const auto deadline = Deadline();
  if (!waiters_.Register(id, deadline, std::move(done))) {
    done(absl::ResourceExhaustedError(kErrTooManyRequests));
    return;
  }
  ProposeWithId(id, std::move(data), deadline);
}

void Server::ProposeWithId(uint64_t id, std::string data, Clock::time_point deadline) {
  std::string retry_data = data;
  raft_loop_->Propose(std::move(data), [this, id, deadline, retry_data = std::move(retry_data)](
                                           absl::Status s) mutable {
    if (s.ok()) return;
    if (raft::IsErrProposalDropped(s) && Clock::now() < deadline && waiters_.Contains(id)) {
      // No leader yet (or a transfer in progress): try again shortly. The
      // dropped proposal never entered a log, so this cannot apply twice.
      std::lock_guard lock(timer_mu_);
      retries_.push_back(
          Retry{id, std::move(retry_data), deadline, Clock::now() + std::chrono::milliseconds(50)});
      return;
    }
    waiters_.Trigger(id, raft::IsErrProposalDropped(s) ? TimedOut() : s);
  });
}

void Server::ProposeConfChange(raft::ConfChange cc, uint64_t id, Done done) {
  if (!waiters_.Register(id, Deadline(), std::move(done))) {
    done(absl::ResourceExhaustedError(kErrTooManyRequests));
    return;
  }
  raft_loop_->ProposeConfChange(std::move(cc), [this, id](absl::Status s) {
    if (s.ok()) return;
    waiters_.Trigger(id, raft::IsErrProposalDropped(s) ? NoLeader() : s);
  });
}

void Server::Write(internal::Request req, Done done) {
  if (auto s = CheckQuota(req); !s.ok()) {
    done(s);
    return;
  }
  Propose(std::move(req), std::move(done));
}

bool Server::NoSpaceAlarmed() const {
  std::lock_guard lock(alarm_mu_);
  for (const auto& [key, on] : alarms_) {
    if (key.second == etcdserverpb::NOSPACE) return true;
  }
  return false;
}

absl::Status Server::CheckQuota(const internal::Request& req) {
  if (config_.quota_backend_bytes < 0) return absl::OkStatus();
  const bool writes = req.has_put() || (req.has_txn() && TxnHasWrites(req.txn()));
  if (!writes) return absl::OkStatus();
  if (NoSpaceAlarmed()) return NoSpace();
  const uint64_t quota = config_.QuotaBackendBytesEffective();
  if (store()->SizeBytes() + req.ByteSizeLong() <= quota) return absl::OkStatus();
  // Over the quota: raise the alarm cluster-wide (every member then refuses
  // writes at the same log position) and refuse this one.
  internal::Request alarm;
  alarm.mutable_alarm()->set_action(etcdserverpb::AlarmRequest::ACTIVATE);
  alarm.mutable_alarm()->set_memberid(member_id_);
  alarm.mutable_alarm()->set_alarm(etcdserverpb::NOSPACE);
  spdlog::warn("event=alarm_raise alarm=NOSPACE member={} db_size_bytes={} quota_bytes={}",
               Hex(member_id_), store()->SizeBytes(), quota);
  Propose(std::move(alarm), [](Outcome) {});
  return NoSpace();
}

// ---- reads ----

void Server::Range(const etcdserverpb::RangeRequest& req,
                   std::function<void(absl::StatusOr<etcdserverpb::RangeResponse>)> done) {
  auto run = [this](const etcdserverpb::RangeRequest& req, const auto& done) {
    metrics_->mvcc_range_total->Inc();
    auto r = store()->Range(req);
    if (r.ok()) FillHeader(r->mutable_header(), r->header().revision());
    done(std::move(r));
  };
  if (req.serializable() || config_.unsafe_local_linearizable_reads) {
    run(req, done);
    return;
  }
  // The request is copied only for a read that waits.
  LinearizableWait([run, req, done = std::move(done)](absl::Status s) {
    if (!s.ok()) {
      done(s);
      return;
    }
    run(req, done);
  });
}

void Server::LinearizableWait(std::function<void(absl::Status)> ready) {
  std::unique_lock lock(read_mu_);
  if (reads_pending_.size() + reads_inflight_.size() >= options_.pending_reads_max) {
    lock.unlock();
    ready(absl::ResourceExhaustedError(kErrTooManyRequests));
    return;
  }
  reads_pending_.push_back(ReadWaiter{Deadline(), std::move(ready)});
  if (read_ctx_.empty()) IssueReadIndex();
}

void Server::IssueReadIndex() {
  // Every read waiting now shares this round: one heartbeat confirms the
  // leader for all of them.
  for (ReadWaiter& r : reads_pending_) reads_inflight_.push_back(std::move(r));
  reads_pending_.clear();
  read_ctx_ = absl::StrCat(Hex(member_id_), "/", ++read_seq_);
  metrics_->read_index_rounds_total->Inc();
  read_issued_at_ = Clock::now();
  raft_loop_->ReadIndex(read_ctx_, [](absl::Status) {
    // Refused (no leader): the timer reissues the round until the readers'
    // deadlines pass.
  });
}

bool Server::WaitApplied(uint64_t index, std::chrono::milliseconds timeout) {
  auto applied = std::make_shared<std::promise<void>>();
  std::future<void> done = applied->get_future();
  {
    std::lock_guard lock(read_mu_);
    // NotifyApplied stores the index before it takes read_mu_, so a waiter
    // added after this check is always seen by the NotifyApplied that passes it.
    if (applied_index_.load() >= index) return true;
    applied_waiters_.emplace(index, [applied](absl::Status) { applied->set_value(); });
  }
  return done.wait_for(timeout) == std::future_status::ready;
}

void Server::NotifyApplied(uint64_t index) {
  applied_index_ = index;
  std::vector<std::function<void(absl::Status)>> ready;
  {
    std::lock_guard lock(read_mu_);
    auto end = applied_waiters_.upper_bound(index);
    for (auto it = applied_waiters_.begin(); it != end; ++it)
      ready.push_back(std::move(it->second));
    applied_waiters_.erase(applied_waiters_.begin(), end);
  }
  for (auto& r : ready) r(absl::OkStatus());
}

// ---- housekeeping ----

void Server::TimerLoop() {
  const auto period = std::chrono::milliseconds(20);
  const auto read_retry = std::chrono::milliseconds(
      std::max<uint64_t>(2 * config_.heartbeat_interval_ms, config_.election_timeout_ms / 2));
  auto next_publish = Clock::now();
  for (;;) {
    std::vector<Retry> due;
    std::vector<std::pair<LeaderTransfer, absl::Status>> transfers_done;
    {
      std::unique_lock lock(timer_mu_);
      timer_cv_.wait_for(lock, period, [&] { return timer_stop_; });
      if (timer_stop_) return;
      const auto now = Clock::now();
      for (auto it = retries_.begin(); it != retries_.end();) {
        if (it->at <= now) {
          due.push_back(std::move(*it));
          it = retries_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = transfers_.begin(); it != transfers_.end();) {
        if (leader_.load() == it->target) {
          transfers_done.emplace_back(std::move(*it), absl::OkStatus());
          it = transfers_.erase(it);
        } else if (it->deadline <= now) {
          transfers_done.emplace_back(std::move(*it),
                                      absl::UnavailableError(kErrTimeoutLeaderTransfer));
          it = transfers_.erase(it);
        } else {
          ++it;
        }
      }
    }
    const auto now = Clock::now();
    for (Retry& r : due) ProposeWithId(r.id, std::move(r.data), r.deadline);
    for (auto& [t, s] : transfers_done) t.done(s);
    waiters_.Expire(now, TimedOut());

    std::vector<ReadWaiter> expired;
    {
      std::lock_guard lock(read_mu_);
      for (auto* list : {&reads_pending_, &reads_inflight_}) {
        auto keep = std::partition(list->begin(), list->end(),
                                   [&](const ReadWaiter& r) { return r.deadline > now; });
        for (auto it = keep; it != list->end(); ++it) expired.push_back(std::move(*it));
        list->erase(keep, list->end());
      }
      if (!read_ctx_.empty() && now - read_issued_at_ > read_retry) {
        // The round got no answer (no leader, or a lost message): retry it.
        read_ctx_.clear();
        for (ReadWaiter& r : reads_inflight_) reads_pending_.push_back(std::move(r));
        reads_inflight_.clear();
      }
      if (read_ctx_.empty() && !reads_pending_.empty()) IssueReadIndex();
    }
    for (ReadWaiter& r : expired) r.ready(TimedOut());

    metrics_->proposals_pending->Set(static_cast<double>(waiters_.size()));
    ExpireAndCheckpointLeases();
    if (now >= next_publish) {
      next_publish = now + std::chrono::seconds(1);
      PublishAttributesIfNeeded();
    }
  }
}

void Server::ExpireAndCheckpointLeases() {
  if (!lessor_->is_primary() || leader_.load() != member_id_) return;
  const auto now = lease::Clock::now();
  // A token bucket: the revocation rate over real elapsed time (ticks run
  // late under load), with at most one second's worth saved up.
  const double rate = static_cast<double>(options_.lease_revoke_rate_per_second);
  if (revoke_budget_at_ != lease::Clock::time_point{}) {
    revoke_budget_ += rate * std::chrono::duration<double>(now - revoke_budget_at_).count();
  }
  revoke_budget_ = std::min(revoke_budget_, rate);
  revoke_budget_at_ = now;
  const size_t allowed = static_cast<size_t>(revoke_budget_);
  // A revocation not applied within a request timeout is proposed again.
  const std::vector<int64_t> expired = lessor_->Expired(now, allowed, request_timeout_);
  revoke_budget_ -= static_cast<double>(expired.size());
  for (int64_t id : expired) {
    internal::Request req;
    req.mutable_lease_revoke()->set_id(id);
    metrics_->lease_expired_total->Inc();
    Propose(std::move(req), [](Outcome) {});
  }
  // Due checkpoints go out together, in one proposal a second at most (the
  // interval is minutes in production).
  if (now < next_checkpoint_batch_) return;
  next_checkpoint_batch_ =
      now + std::min<lease::Clock::duration>(std::chrono::seconds(1),
                                             options_.lease_checkpoint_interval / 2);
  auto due = lessor_->DueCheckpoints(now, 1000);
  if (!due.empty()) ProposeCheckpoints(due);
}

void Server::ProposeCheckpoints(const std::vector<std::pair<int64_t, int64_t>>& remaining) {
  internal::Request req;
  for (const auto& [id, seconds] : remaining) {
    auto* c = req.mutable_lease_checkpoint()->add_checkpoints();
    c->set_id(id);
    c->set_remaining_ttl(seconds);
  }
  Propose(std::move(req), [](Outcome) {});
}

void Server::LeaseGrant(int64_t id, int64_t ttl_seconds,
                        std::function<void(absl::StatusOr<std::pair<int64_t, int64_t>>)> done) {
  if (auto ttl = lessor_->EffectiveTtl(ttl_seconds); !ttl.ok()) {
    done(ttl.status());
    return;
  }
  if (id == 0) {
    // Generated here, not at apply: every member must apply the same id.
    id = static_cast<int64_t>(NextRequestId() & ((uint64_t{1} << 63) - 1));
  }
  internal::Request req;
  req.mutable_lease_grant()->set_id(id);
  req.mutable_lease_grant()->set_ttl(ttl_seconds);
  Propose(std::move(req), [this, id, done = std::move(done)](Outcome o) {
    if (!o.ok()) {
      done(o.status());
      return;
    }
    metrics_->lease_granted_total->Inc();
    done(std::make_pair(id, o->lease_ttl.value_or(0)));
  });
}

void Server::LeaseRevoke(int64_t id, std::function<void(absl::Status)> done) {
  internal::Request req;
  req.mutable_lease_revoke()->set_id(id);
  Propose(std::move(req), [done = std::move(done)](Outcome o) { done(o.status()); });
}

absl::StatusOr<int64_t> Server::RenewOnLeader(int64_t id) {
  bool clear_checkpoint = false;
  auto ttl = lessor_->Renew(id, lease::Clock::now(), &clear_checkpoint);
  if (!ttl.ok()) return ttl;
  metrics_->lease_renewed_total->Inc();
  // The recorded remaining TTL is older than this renewal: without this a
  // new leader would start the lease from it instead of the full TTL.
  if (clear_checkpoint) ProposeCheckpoints({{id, 0}});
  return ttl;
}

void Server::LeaseRenew(int64_t id, std::function<void(absl::StatusOr<int64_t>)> done) {
  const uint64_t leader = leader_.load();
  if (leader == 0) {
    done(NoLeader());
    return;
  }
  if (leader == member_id_) {
    auto ttl = RenewOnLeader(id);
    done(ttl.ok() || ttl.status().code() == absl::StatusCode::kNotFound ? ttl : NoLeader());
    return;
  }
  transport_->ForwardLeaseRenew(leader, id, applied_index_.load(), std::move(done));
}

void Server::LeaseTimeToLive(int64_t id, bool keys,
                             std::function<void(absl::StatusOr<lease::TimeToLive>)> done) {
  const uint64_t leader = leader_.load();
  if (leader == 0) {
    done(NoLeader());
    return;
  }
  if (leader == member_id_) {
    done(lessor_->GetTimeToLive(id, keys, lease::Clock::now()));
    return;
  }
  transport_->ForwardLeaseTimeToLive(
      leader, id, keys, applied_index_.load(),
      [done = std::move(done)](absl::StatusOr<peer::LeaseTtlReply> r) {
        if (!r.ok()) {
          done(r.status());
          return;
        }
        lease::TimeToLive t;
        t.granted_ttl_seconds = r->granted_ttl();
        t.ttl_seconds = r->ttl();
        t.keys.assign(r->keys().begin(), r->keys().end());
        done(std::move(t));
      });
}

void Server::PublishAttributesIfNeeded() {
  if (leader_.load() == 0 || publish_inflight_.load()) return;
  auto me = membership_.Get(member_id_);
  if (!me) return;
  std::vector<std::string> urls;
  for (const Url& u : config_.advertise_client_urls) urls.push_back(u.ToString());
  if (me->name() == config_.name &&
      std::equal(urls.begin(), urls.end(), me->client_urls().begin(), me->client_urls().end())) {
    return;
  }
  internal::Request req;
  auto* a = req.mutable_member_attributes();
  a->set_id(member_id_);
  a->set_name(config_.name);
  for (const std::string& u : urls) a->add_client_urls(u);
  publish_inflight_ = true;
  Propose(std::move(req), [this](Outcome o) {
    publish_inflight_ = false;
    if (o.ok()) spdlog::info("event=published member={} name={}", Hex(member_id_), config_.name);
  });
}

// ---- header and status ----

void Server::FillHeader(etcdserverpb::ResponseHeader* header, int64_t revision) const {
  header->set_cluster_id(cluster_id_);
  header->set_member_id(member_id_);
  header->set_raft_term(term_.load());
  header->set_revision(revision > 0 ? revision : store()->current_revision());
}

bool Server::HasLeader() const {
  return leader_.load() != 0;
}

bool Server::IsLearner() const {
  auto me = membership_.Get(member_id_);
  return me && me->is_learner();
}
uint64_t Server::leader() const {
  return leader_.load();
}

MemberStatus Server::Status() const {
  MemberStatus s;
  s.leader = leader_.load();
  s.raft_term = term_.load();
  auto st = store();
  s.raft_applied_index = st->applied_index();
  s.raft_index = std::max<uint64_t>(committed_index_.load(), s.raft_applied_index);
  s.db_size_bytes = st->SizeBytes();
  s.revision = st->current_revision();
  s.is_learner = IsLearner();
  return s;
}

absl::StatusOr<storage::HashKVResult> Server::HashKV(int64_t revision) const {
  return store()->HashKV(revision);
}

void Server::Defragment() {
  spdlog::info("event=defragment member={}", Hex(member_id_));
  store()->RequestFullCompaction();
}

absl::StatusOr<uint64_t> Server::CheckpointTo(const std::string& dir) const {
  auto st = store();
  // The apply loop may be mid-batch; the checkpoint holds whole batches
  // (each batch is one atomic RocksDB write), and its applied index says
  // which.
  if (auto s = st->Checkpoint(dir); !s.ok()) return s;
  auto copy =
      storage::StateStore::Open(dir, storage::StateStoreOptions{.background_compaction = false});
  if (!copy.ok()) return copy.status();
  return (*copy)->applied_index();
}

// ---- alarms ----

std::vector<etcdserverpb::AlarmMember> Server::Alarms() const {
  std::lock_guard lock(alarm_mu_);
  std::vector<etcdserverpb::AlarmMember> out;
  for (const auto& [key, on] : alarms_) {
    etcdserverpb::AlarmMember a;
    a.set_memberid(key.first);
    a.set_alarm(static_cast<etcdserverpb::AlarmType>(key.second));
    out.push_back(a);
  }
  return out;
}

void Server::Alarm(const etcdserverpb::AlarmRequest& req,
                   std::function<void(absl::StatusOr<etcdserverpb::AlarmResponse>)> done) {
  auto matching = [this, req] {
    etcdserverpb::AlarmResponse resp;
    for (const etcdserverpb::AlarmMember& a : Alarms()) {
      if (req.memberid() != 0 && a.memberid() != req.memberid()) continue;
      if (req.alarm() != etcdserverpb::NONE && a.alarm() != req.alarm()) continue;
      *resp.add_alarms() = a;
    }
    FillHeader(resp.mutable_header());
    return resp;
  };
  if (req.action() == etcdserverpb::AlarmRequest::GET) {
    done(matching());
    return;
  }
  if (req.action() == etcdserverpb::AlarmRequest::DEACTIVATE) {
    // Answer with the alarms this disarms (as they were before it applies).
    etcdserverpb::AlarmResponse before = matching();
    internal::Request r;
    *r.mutable_alarm() = req;
    Propose(std::move(r), [this, before, done = std::move(done)](Outcome o) mutable {
      if (!o.ok()) {
        done(o.status());
        return;
      }
      FillHeader(before.mutable_header());
      done(before);
    });
    return;
  }
  internal::Request r;
  *r.mutable_alarm() = req;
  Propose(std::move(r), [matching, done = std::move(done)](Outcome o) {
    if (!o.ok()) {
      done(o.status());
      return;
    }
    done(matching());
  });
}

// ---- cluster ----

void Server::MemberAdd(std::vector<std::string> peer_urls, bool is_learner, MembersDone done) {
  std::vector<std::string> sorted = peer_urls;
  std::sort(sorted.begin(), sorted.end());
  // etcd's id for an added member: SHA-1 over its peer URLs, the cluster
  // token and the time, so re-adding the same URLs gets a new id.
  std::string seed = absl::StrCat(absl::StrJoin(sorted, ""), config_.initial_cluster_token,
                                  std::chrono::system_clock::now().time_since_epoch().count());
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), digest);
  uint64_t id = 0;
  for (int i = 0; i < 8; i++) id = (id << 8) | digest[i];

  peer::Member m;
  m.set_id(id);
  for (const std::string& u : peer_urls) m.add_peer_urls(u);
  m.set_is_learner(is_learner);
  if (auto s = membership_.CheckAdd(m); !s.ok()) {
    done(s);
    return;
  }
  const uint64_t request_id = NextRequestId();
  internal::ConfChangeContext ctx;
  ctx.set_request_id(request_id);
  *ctx.mutable_member() = m;
  raft::ConfChange cc;
  cc.changes.push_back({is_learner ? raft::ConfChangeSingle::Type::kAddLearnerNode
                                   : raft::ConfChangeSingle::Type::kAddNode,
                        id});
  cc.context = ctx.SerializeAsString();
  ProposeConfChange(std::move(cc), request_id, [this, m, done = std::move(done)](Outcome o) {
    if (!o.ok()) {
      done(o.status());
      return;
    }
    done(std::make_pair(m, membership_.List()));
  });
}

void Server::MemberRemove(uint64_t id, std::function<void(absl::Status)> done) {
  if (!membership_.Get(id)) {
    done(absl::NotFoundError(kErrMemberNotFound));
    return;
  }
  // The quorum check needs the leader's view of who is active; a follower
  // lets the leader's commit decide (etcd checks locally too).
  raft_loop_->QueryStatus([this, id, done = std::move(done)](const raft::Status& st) mutable {
    if (st.soft_state.state == raft::StateType::kLeader) {
      std::map<uint64_t, bool> active = st.recent_active;
      active[member_id_] = true;
      if (auto s = membership_.CheckRemove(id, active); !s.ok()) {
        done(s);
        return;
      }
    }
    const uint64_t request_id = NextRequestId();
    internal::ConfChangeContext ctx;
    ctx.set_request_id(request_id);
    ctx.mutable_member()->set_id(id);
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeSingle::Type::kRemoveNode, id});
    cc.context = ctx.SerializeAsString();
    ProposeConfChange(std::move(cc), request_id,
                      [done = std::move(done)](Outcome o) { done(o.status()); });
  });
}

void Server::MemberPromote(uint64_t id, std::function<void(absl::Status)> done) {
  if (auto s = membership_.CheckPromote(id); !s.ok()) {
    done(s);
    return;
  }
  raft_loop_->QueryStatus([this, id, done = std::move(done)](const raft::Status& st) mutable {
    if (st.soft_state.state != raft::StateType::kLeader) {
      // Only the leader knows how far the learner got.
      done(absl::FailedPreconditionError(kErrNotLeader));
      return;
    }
    // etcd's rule: the learner must have 90% of the leader's log.
    auto learner = st.match.find(id);
    auto self = st.match.find(member_id_);
    const uint64_t leader_match = self != st.match.end() ? self->second : 0;
    if (learner == st.match.end() ||
        static_cast<double>(learner->second) < 0.9 * static_cast<double>(leader_match)) {
      done(absl::FailedPreconditionError(kErrLearnerNotReady));
      return;
    }
    auto m = membership_.Get(id);
    if (!m) {
      done(absl::NotFoundError(kErrMemberNotFound));
      return;
    }
    m->set_is_learner(false);
    const uint64_t request_id = NextRequestId();
    internal::ConfChangeContext ctx;
    ctx.set_request_id(request_id);
    *ctx.mutable_member() = *m;
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeSingle::Type::kAddNode, id});
    cc.context = ctx.SerializeAsString();
    ProposeConfChange(std::move(cc), request_id,
                      [done = std::move(done)](Outcome o) { done(o.status()); });
  });
}

void Server::MemberUpdate(uint64_t id, std::vector<std::string> peer_urls,
                          std::function<void(absl::Status)> done) {
  if (auto s = membership_.CheckUpdate(id, peer_urls); !s.ok()) {
    done(s);
    return;
  }
  internal::Request req;
  req.mutable_member_update()->set_id(id);
  for (const std::string& u : peer_urls) req.mutable_member_update()->add_peer_urls(u);
  Propose(std::move(req), [done = std::move(done)](Outcome o) { done(o.status()); });
}

void Server::MoveLeader(uint64_t target, std::function<void(absl::Status)> done) {
  if (leader_.load() != member_id_) {
    done(absl::FailedPreconditionError(kErrNotLeader));
    return;
  }
  auto m = membership_.Get(target);
  if (!m || m->is_learner()) {
    done(absl::FailedPreconditionError(kErrBadLeaderTransferee));
    return;
  }
  if (target == member_id_) {
    done(absl::OkStatus());
    return;
  }
  {
    std::lock_guard lock(timer_mu_);
    transfers_.push_back(LeaderTransfer{target, Deadline(), std::move(done)});
  }
  spdlog::info("event=leader_transfer from={} to={}", Hex(member_id_), Hex(target));
  raft_loop_->TransferLeader(target);
}

}  // namespace ganglion::server
