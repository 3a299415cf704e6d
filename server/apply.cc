// The apply loop: takes committed entries from the raft loop in log order,
// applies each exactly once to the state store (the applied index in the
// same write batch), answers the waiters of the requests it applied, keeps
// the members and alarms tables, installs snapshots from the leader and
// takes local ones every --snapshot-count entries.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/errors.h"
#include "server/server.h"

namespace ganglion::server {

namespace fs = std::filesystem;

namespace {

constexpr char kAlarmPrefix[] = "alarm/";

std::string AlarmKey(uint64_t member, int type) {
  return absl::StrFormat("%s%016x/%d", kAlarmPrefix, member, type);
}

constexpr char kLeasePrefix[] = "lease/";

std::string LeaseKey(int64_t id) {
  return absl::StrFormat("%s%016x", kLeasePrefix, id);
}

// Every lease a txn's puts name exists (both branches: which one runs is
// decided by the store).
bool TxnLeasesExist(const etcdserverpb::TxnRequest& t, const lease::Lessor& lessor) {
  for (const auto* ops : {&t.success(), &t.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_put() && op.request_put().lease() != 0 &&
          !lessor.Exists(op.request_put().lease())) {
        return false;
      }
      if (op.has_request_txn() && !TxnLeasesExist(op.request_txn(), lessor)) return false;
    }
  }
  return true;
}

[[noreturn]] void Fatal(const std::string& what, const absl::Status& s) {
  // The state store is the member's truth: continuing after a failed write
  // could answer from state that was never stored.
  spdlog::critical("event=apply_failed what=\"{}\" error=\"{}\"", what, s.ToString());
  std::abort();
}

}  // namespace

absl::Status Server::LoadLeases(const storage::StateStore& store) {
  auto records = store.ReadMeta(kLeasePrefix);
  if (!records.ok()) return records.status();
  std::vector<lease::LeaseInfo> leases;
  for (const auto& [key, value] : *records) {
    internal::LeaseRecord r;
    if (!r.ParseFromString(value)) return absl::DataLossError("corrupt lease record " + key);
    leases.push_back({r.id(), r.ttl(), r.remaining_ttl()});
  }
  lessor_->Reset(leases);
  if (leases.empty()) return absl::OkStatus();
  // Which keys each lease holds: every live key that names a lease.
  etcdserverpb::RangeRequest all;
  all.set_key(std::string(1, '\0'));
  all.set_range_end(std::string(1, '\0'));
  all.set_keys_only(true);
  auto kvs = store.Range(all);
  if (!kvs.ok()) return kvs.status();
  for (const mvccpb::KeyValue& kv : kvs->kvs()) {
    if (kv.lease() != 0) lessor_->OnPut(kv.key(), kv.lease());
  }
  return absl::OkStatus();
}

void Server::OnRevisionsApplied(std::vector<storage::RevisionEvents> batch) {
  std::vector<std::function<void()>> fire;
  for (const storage::RevisionEvents& rev : batch) {
    key_waiters_.TakeMatching(rev, &fire);
    for (const mvccpb::Event& e : rev.events) {
      if (e.type() == mvccpb::Event::PUT) {
        lessor_->OnPut(e.kv().key(), e.kv().lease());
      } else {
        lessor_->OnDelete(e.kv().key());
      }
    }
  }
  // The hub keeps the events (moved, not copied), and has them before any
  // waiter's caller learns of these revisions.
  if (watch_hub_) watch_hub_->Publish(std::move(batch));
  for (auto& f : fire) f();
}

absl::Status Server::LoadAlarms(const storage::StateStore& store) {
  auto records = store.ReadMeta(kAlarmPrefix);
  if (!records.ok()) return records.status();
  std::lock_guard lock(alarm_mu_);
  alarms_.clear();
  for (const auto& [key, value] : *records) {
    // alarm/<member hex>/<type>
    std::string rest = key.substr(sizeof(kAlarmPrefix) - 1);
    auto slash = rest.find('/');
    uint64_t member = 0;
    int type = 0;
    if (slash == std::string::npos || !absl::SimpleHexAtoi(rest.substr(0, slash), &member) ||
        !absl::SimpleAtoi(rest.substr(slash + 1), &type)) {
      return absl::DataLossError("corrupt alarm record " + key);
    }
    alarms_[{member, type}] = true;
  }
  return absl::OkStatus();
}

void Server::ApplyLoop() {
  for (;;) {
    Committed c;
    {
      std::unique_lock lock(apply_mu_);
      apply_cv_.wait(lock, [&] { return stopping_ || !apply_queue_.empty(); });
      if (stopping_) return;
      c = std::move(apply_queue_.front());
      apply_queue_.pop_front();
    }
    apply_room_cv_.notify_one();
    ApplyCommitted(c);
  }
}

void Server::ApplyCommitted(Committed& committed) {
  if (committed.snapshot && committed.snapshot->metadata.index > store()->applied_index()) {
    RestoreSnapshot(*committed.snapshot);
  }
  if (!committed.entries.empty()) {
    uint64_t last = committed.entries.back().index;
    uint64_t prev = committed_index_.load();
    while (last > prev && !committed_index_.compare_exchange_weak(prev, last)) {
    }
  }
  std::map<raft::Index, const absl::StatusOr<raft::ConfState>*> conf_results;
  for (const auto& [index, result] : committed.conf_changes) conf_results[index] = &result;

  std::shared_ptr<storage::StateStore> st = store();
  const uint64_t applied = st->applied_index();
  std::vector<storage::ApplyOp> ops;
  std::vector<uint64_t> op_ids;
  std::vector<storage::MetaWrite> meta;
  // Requests answered without a store op (refused, or not key-value), in
  // log order; answered after the batch is durable.
  std::vector<std::pair<uint64_t, Outcome>> answers;
  uint64_t last_index = 0;
  bool removed_self = false;
  // Whether ops pending in this batch may attach or detach leased keys: a
  // lease revocation needs them applied first to know the lease's keys.
  bool lease_keys_dirty = false;

  // Writes what is pending (ops, meta records, applied index up to `upto`)
  // in one store batch, then answers its waiters.
  auto flush = [&](uint64_t upto) {
    const auto apply_start = std::chrono::steady_clock::now();
    auto results = st->Apply(ops, upto, meta);
    if (!results.ok()) Fatal("apply batch", results.status());
    const double apply_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - apply_start).count();
    metrics_->backend_commit_duration_seconds->Observe(apply_seconds);
    // etcd's threshold for a slow apply.
    if (apply_seconds > 0.1) metrics_->slow_apply_total->Inc();
    for (const storage::ApplyOp& op : ops) {
      if (std::holds_alternative<etcdserverpb::PutRequest>(op.request)) {
        metrics_->mvcc_put_total->Inc();
      } else if (std::holds_alternative<etcdserverpb::DeleteRangeRequest>(op.request)) {
        metrics_->mvcc_delete_total->Inc();
      } else if (std::holds_alternative<etcdserverpb::TxnRequest>(op.request)) {
        metrics_->mvcc_txn_total->Inc();
      }
    }
    metrics_->proposals_applied_total->Set(static_cast<double>(upto));
    metrics_->proposals_committed_total->Set(static_cast<double>(committed_index_.load()));
    const int64_t revision = st->current_revision();
    NotifyApplied(upto);
    for (size_t i = 0; i < op_ids.size(); i++) {
      storage::ApplyResult& res = (*results)[i];
      if (op_ids[i] == 0) continue;
      if (res.ok()) {
        waiters_.Trigger(op_ids[i], Applied{std::move(*res), revision, std::nullopt});
      } else {
        waiters_.Trigger(op_ids[i], res.status());
      }
    }
    for (auto& [id, outcome] : answers) {
      if (id == 0) continue;
      if (outcome.ok()) outcome->revision = revision;
      waiters_.Trigger(id, std::move(outcome));
    }
    ops.clear();
    op_ids.clear();
    meta.clear();
    answers.clear();
    lease_keys_dirty = false;
  };

  for (raft::Entry& e : committed.entries) {
    if (e.type == raft::EntryType::kConfChange) {
      auto it = conf_results.find(e.index);
      const bool ok = it != conf_results.end() && it->second->ok();
      // The configuration is tracked for every entry, also those the store
      // already has: the raft loop re-applies them all after a restart.
      if (ok) conf_state_ = **it->second;
      if (e.index <= applied) continue;
      last_index = e.index;
      auto cc = raft::DecodeConfChange(e.data);
      internal::ConfChangeContext ctx;
      if (!cc.ok() || !ctx.ParseFromString(cc->context) || cc->changes.size() != 1) {
        spdlog::error("event=bad_conf_change index={}", e.index);
        continue;
      }
      if (!ok) {
        answers.emplace_back(ctx.request_id(), it != conf_results.end()
                                                   ? it->second->status()
                                                   : absl::InternalError("conf change lost"));
        continue;
      }
      const raft::ConfChangeSingle& change = cc->changes[0];
      const uint64_t id = change.node_id;
      switch (change.type) {
        case raft::ConfChangeSingle::Type::kAddNode:
        case raft::ConfChangeSingle::Type::kAddLearnerNode: {
          peer::Member m = ctx.member();
          m.set_id(id);
          m.set_is_learner(change.type == raft::ConfChangeSingle::Type::kAddLearnerNode);
          if (auto existing = membership_.Get(id)) {
            // A promotion (or the bootstrap entries replayed): keep what
            // the member published about itself.
            m.set_name(existing->name());
            *m.mutable_client_urls() = existing->client_urls();
            if (m.peer_urls().empty()) *m.mutable_peer_urls() = existing->peer_urls();
          }
          for (auto& w : membership_.Put(m)) meta.push_back(std::move(w));
          if (id != member_id_ && !m.peer_urls().empty()) {
            (void)transport_->AddPeer(id, m.peer_urls(0));
          }
          spdlog::info("event=member_{} member={} learner={} index={}",
                       ctx.request_id() == 0 ? "bootstrapped" : "added", absl::StrFormat("%x", id),
                       m.is_learner(), e.index);
          break;
        }
        case raft::ConfChangeSingle::Type::kRemoveNode:
          for (auto& w : membership_.Remove(id)) meta.push_back(std::move(w));
          if (id == member_id_) {
            removed_self = true;
          } else {
            transport_->RemovePeer(id);
          }
          spdlog::info("event=member_removed member={} index={}", absl::StrFormat("%x", id),
                       e.index);
          break;
      }
      answers.emplace_back(ctx.request_id(), Applied{});
      continue;
    }

    if (e.index <= applied) continue;
    last_index = e.index;
    if (e.data.empty()) continue;  // a new leader's empty entry
    internal::Request r;
    if (!r.ParseFromString(e.data)) {
      spdlog::error("event=bad_entry index={}", e.index);
      continue;
    }
    switch (r.kind_case()) {
      case internal::Request::kPut:
        if (NoSpaceAlarmed()) {
          answers.emplace_back(r.id(), NoSpace());
        } else if (r.put().lease() != 0 && !lessor_->Exists(r.put().lease())) {
          answers.emplace_back(r.id(), absl::NotFoundError(lease::kErrLeaseNotFound));
        } else {
          // Only a put that names a lease, or overwrites a leased key, moves
          // keys between leases (ignore_lease keeps the key's lease).
          if ((r.put().lease() != 0 && !r.put().ignore_lease()) ||
              lessor_->LeaseOf(r.put().key()) != 0) {
            lease_keys_dirty = true;
          }
          ops.push_back(storage::ApplyOp{std::move(*r.mutable_put()), e.index});
          op_ids.push_back(r.id());
        }
        break;
      case internal::Request::kDeleteRange:
        ops.push_back(storage::ApplyOp{std::move(*r.mutable_delete_range()), e.index});
        op_ids.push_back(r.id());
        lease_keys_dirty = true;
        break;
      case internal::Request::kTxn:
        // With NOSPACE raised every member refuses writing txns at the same
        // position in the log (the alarm itself is an entry).
        if (NoSpaceAlarmed() && TxnHasWrites(r.txn())) {
          answers.emplace_back(r.id(), NoSpace());
        } else if (!TxnLeasesExist(r.txn(), *lessor_)) {
          answers.emplace_back(r.id(), absl::NotFoundError(lease::kErrLeaseNotFound));
        } else {
          ops.push_back(storage::ApplyOp{std::move(*r.mutable_txn()), e.index});
          op_ids.push_back(r.id());
          lease_keys_dirty = true;
        }
        break;
      case internal::Request::kLeaseGrant: {
        const etcdserverpb::LeaseGrantRequest& g = r.lease_grant();
        auto ttl = lessor_->EffectiveTtl(g.ttl());
        absl::Status granted =
            ttl.ok() ? lessor_->Grant(g.id(), *ttl, lease::Clock::now()) : ttl.status();
        if (!granted.ok()) {
          answers.emplace_back(r.id(), granted);
          break;
        }
        internal::LeaseRecord record;
        record.set_id(g.id());
        record.set_ttl(*ttl);
        meta.push_back({LeaseKey(g.id()), record.SerializeAsString()});
        Applied a;
        a.lease_ttl = *ttl;
        answers.emplace_back(r.id(), std::move(a));
        break;
      }
      case internal::Request::kLeaseRevoke: {
        const int64_t id = r.lease_revoke().id();
        if (!lessor_->Exists(id)) {
          answers.emplace_back(r.id(), absl::NotFoundError(lease::kErrLeaseNotFound));
          break;
        }
        // The lease's keys must be current: apply what may attach or
        // detach keys first (consecutive revocations need no flush: a key
        // belongs to one lease).
        if (lease_keys_dirty) flush(e.index - 1);
        std::vector<std::string> keys = lessor_->Revoke(id);
        meta.push_back({LeaseKey(id), std::nullopt});
        if (keys.empty()) {
          answers.emplace_back(r.id(), Applied{});
          break;
        }
        // All of the lease's keys go in one revision.
        etcdserverpb::TxnRequest txn;
        for (const std::string& k : keys) {
          txn.add_success()->mutable_request_delete_range()->set_key(k);
        }
        storage::ApplyOp op{std::move(txn), e.index};
        op.internal = true;
        ops.push_back(std::move(op));
        op_ids.push_back(r.id());
        metrics_->lease_revoked_total->Inc();
        break;
      }
      case internal::Request::kLeaseCheckpoint:
        for (const etcdserverpb::LeaseCheckpoint& c : r.lease_checkpoint().checkpoints()) {
          if (!lessor_->Checkpoint(c.id(), c.remaining_ttl()).ok()) continue;
          auto info = lessor_->Get(c.id());
          internal::LeaseRecord record;
          record.set_id(info->id);
          record.set_ttl(info->ttl_seconds);
          record.set_remaining_ttl(info->remaining_ttl_seconds);
          meta.push_back({LeaseKey(c.id()), record.SerializeAsString()});
        }
        answers.emplace_back(r.id(), Applied{});
        break;
      case internal::Request::kCompaction:
        ops.push_back(storage::ApplyOp{std::move(*r.mutable_compaction()), e.index});
        op_ids.push_back(r.id());
        break;
      case internal::Request::kAlarm: {
        const etcdserverpb::AlarmRequest& a = r.alarm();
        std::lock_guard lock(alarm_mu_);
        const auto key = std::make_pair(a.memberid(), static_cast<int>(a.alarm()));
        if (a.action() == etcdserverpb::AlarmRequest::ACTIVATE && a.alarm() != etcdserverpb::NONE) {
          if (!alarms_.contains(key)) {
            alarms_[key] = true;
            meta.push_back({AlarmKey(key.first, key.second), std::string()});
            spdlog::warn("event=alarm_activated alarm={} member={}",
                         etcdserverpb::AlarmType_Name(a.alarm()),
                         absl::StrFormat("%x", a.memberid()));
          }
        } else if (a.action() == etcdserverpb::AlarmRequest::DEACTIVATE) {
          if (alarms_.erase(key) > 0) {
            meta.push_back({AlarmKey(key.first, key.second), std::nullopt});
            spdlog::info("event=alarm_deactivated alarm={} member={}",
                         etcdserverpb::AlarmType_Name(a.alarm()),
                         absl::StrFormat("%x", a.memberid()));
          }
        }
        answers.emplace_back(r.id(), Applied{});
        break;
      }
      case internal::Request::kMemberAttributes: {
        const internal::MemberAttributes& a = r.member_attributes();
        if (auto m = membership_.Get(a.id())) {
          m->set_name(a.name());
          *m->mutable_client_urls() = a.client_urls();
          for (auto& w : membership_.Put(*m)) meta.push_back(std::move(w));
        }
        answers.emplace_back(r.id(), Applied{});
        break;
      }
      case internal::Request::kMemberUpdate: {
        const internal::MemberPeerUpdate& u = r.member_update();
        if (auto m = membership_.Get(u.id())) {
          *m->mutable_peer_urls() = u.peer_urls();
          for (auto& w : membership_.Put(*m)) meta.push_back(std::move(w));
          if (u.id() != member_id_ && !u.peer_urls().empty()) {
            (void)transport_->AddPeer(u.id(), u.peer_urls(0));
          }
          answers.emplace_back(r.id(), Applied{});
        } else {
          answers.emplace_back(r.id(), absl::NotFoundError(kErrMemberNotFound));
        }
        break;
      }
      case internal::Request::KIND_NOT_SET:
        answers.emplace_back(r.id(), absl::InvalidArgumentError("empty request"));
        break;
    }
  }
  if (last_index == 0) return;  // everything was already applied
  if (last_index > st->applied_index()) flush(last_index);
  MaybeReportLeading(committed.entries.back().term);
  if (removed_self) {
    spdlog::warn("event=removed member={} reason=\"{}\"", absl::StrFormat("%x", member_id_),
                 kErrMemberRemoved);
    std::lock_guard lock(apply_mu_);
    removed_ = true;
    stopped_cv_.notify_all();
  }
  MaybeSnapshot();
}

void Server::RestoreSnapshot(const raft::Snapshot& snapshot) {
  const uint64_t index = snapshot.metadata.index;
  spdlog::info("event=snapshot_restore index={} term={}", index, snapshot.metadata.term);
  std::weak_ptr<storage::StateStore> old;
  {
    std::unique_lock lock(store_mu_);
    old = store_;
    store_.reset();
  }
  // Readers finish with the old store before its files are replaced; their
  // reads are short and bounded.
  while (!old.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (auto s =
          storage::StateStore::RestoreFromCheckpoint(SnapDir(index), config_.data_dir + "/state");
      !s.ok()) {
    Fatal("restore snapshot", s);
  }
  if (auto s = OpenStateStore(); !s.ok()) Fatal("reopen state after snapshot", s);
  auto st = store();
  if (watch_hub_) watch_hub_->ResetStore(st);  // watch: watchers resume from the new history
  if (auto s = membership_.Load(*st); !s.ok()) Fatal("load members from snapshot", s);
  if (auto s = LoadAlarms(*st); !s.ok()) Fatal("load alarms from snapshot", s);
  if (auto s = LoadLeases(*st); !s.ok()) Fatal("load leases from snapshot", s);
  conf_state_ = snapshot.metadata.conf_state;
  snapshot_index_ = index;
  for (const peer::Member& m : membership_.List()) {
    if (m.id() != member_id_ && !m.peer_urls().empty()) {
      (void)transport_->AddPeer(m.id(), m.peer_urls(0));
    }
  }
  NotifyApplied(st->applied_index());
}

void Server::MaybeSnapshot() {
  auto st = store();
  const uint64_t applied = st->applied_index();
  const uint64_t due = snapshot_index_ + config_.snapshot_count;
  if (applied < due) {
    // The checkpoint flushes the memtables on this thread, holding up every
    // apply meanwhile (up to hundreds of ms for full memtables). Flushing
    // in the background a tenth of the interval ahead leaves it little.
    if (!snapshot_flush_started_ && applied + config_.snapshot_count / 10 >= due) {
      snapshot_flush_started_ = true;
      if (auto s = st->StartFlush(); !s.ok()) {
        spdlog::warn("event=snapshot_preflush_failed error=\"{}\"", s.ToString());
      }
    }
    return;
  }
  snapshot_flush_started_ = false;
  const std::string dir = SnapDir(applied);
  const std::string tmp = dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (auto s = st->Checkpoint(tmp); !s.ok()) {
    spdlog::error("event=snapshot_failed index={} error=\"{}\"", applied, s.ToString());
    return;
  }
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) {
    spdlog::error("event=snapshot_failed index={} error=\"{}\"", applied, ec.message());
    return;
  }
  auto term = log_store_->TermAt(applied);
  if (!term.ok()) {
    spdlog::error("event=snapshot_failed index={} error=\"{}\"", applied, term.status().ToString());
    return;
  }
  raft::Snapshot snap;
  snap.metadata.index = applied;
  snap.metadata.term = *term;
  snap.metadata.conf_state = conf_state_;
  if (auto s = log_store_->SetSnapshot(snap); !s.ok()) {
    spdlog::error("event=snapshot_failed index={} error=\"{}\"", applied, s.ToString());
    return;
  }
  snapshot_index_ = applied;
  const uint64_t compact_to =
      applied > options_.snapshot_catchup_entries ? applied - options_.snapshot_catchup_entries : 0;
  if (compact_to > log_store_->FirstIndex()) {
    if (auto s = log_store_->Compact(compact_to); !s.ok()) {
      spdlog::error("event=log_compact_failed index={} error=\"{}\"", compact_to, s.ToString());
    }
  }
  // Keep the two newest checkpoints: the one a follower may be receiving
  // and the current one.
  std::vector<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(config_.data_dir + "/snap", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == 16 && entry.is_directory()) dirs.push_back(entry.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  for (size_t i = 0; i + 2 < dirs.size(); i++) fs::remove_all(dirs[i], ec);
  spdlog::info("event=snapshot index={} term={} log_first_index={}", applied, *term,
               log_store_->FirstIndex());
}

}  // namespace ganglion::server
