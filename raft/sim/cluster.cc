#include "raft/sim/cluster.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::raft::sim {

void SimStats::Add(const SimStats& o) {
  elections += o.elections;
  leader_changes += o.leader_changes;
  committed += o.committed;
  dropped += o.dropped;
  duplicated += o.duplicated;
  crashes += o.crashes;
  mid_ready_crashes += o.mid_ready_crashes;
  partitions += o.partitions;
  snapshots_installed += o.snapshots_installed;
  conf_changes += o.conf_changes;
  reads += o.reads;
}

std::string SimStats::Describe() const {
  return absl::StrCat("elections=", elections, " leader_changes=", leader_changes,
                      " committed=", committed, " dropped=", dropped, " duplicated=", duplicated,
                      " crashes=", crashes, " mid_ready_crashes=", mid_ready_crashes,
                      " partitions=", partitions, " snapshots_installed=", snapshots_installed,
                      " conf_changes=", conf_changes, " reads=", reads);
}

const std::vector<std::string>& KnownBugs() {
  static const std::vector<std::string> kBugs = {"vote-without-log-check", "commit-old-term",
                                                 "accept-stale-snapshot",  "vote-before-persist",
                                                 "serve-read-locally",     "ack-before-persist"};
  return kBugs;
}

namespace {

constexpr int kElectionTicks = 10;
// Bounds on client state, so a run's memory and time stay bounded.
constexpr size_t kPendingWritesMax = 24;
constexpr size_t kPendingReadsMax = 16;
constexpr uint64_t kReadExpiryTicks = 150;
constexpr uint64_t kRetryEveryTicks = 12;
constexpr uint64_t kRetryBackoffMaxTicks = 60;
constexpr int kReadyLoopsMax = 1000;
constexpr size_t kMembersMax = 9;

bool InConf(const ConfState& cs, NodeId id) {
  for (const auto* ids : {&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next}) {
    if (std::find(ids->begin(), ids->end(), id) != ids->end()) return true;
  }
  return false;
}

class Cluster {
 public:
  explicit Cluster(const SimOptions& opts)
      : opts_(opts), rng_(opts.seed), mid_ready_rng_(HashMix(opts.seed, 0x6d69647265616479)) {}

  SimResult Run();

 private:
  struct PendingRead {
    NodeId node = kNoNode;
    uint64_t incarnation = 0;
    Index floor_index = 0;  // every write completed before the read began
    Index read_index = 0;
    bool answered = false;
    uint64_t issued_tick = 0;
  };

  bool Failed() const { return checker_.violation().has_value(); }
  void Trace(const std::string& line) {
    if (!opts_.trace) return;
    size_t from = trace_.size();
    absl::StrAppend(&trace_, "t=", now_, " ", line, "\n");
    if (opts_.trace_line_sink) opts_.trace_line_sink(trace_.substr(from));
  }
  SimNode* Node(NodeId id) {
    auto it = nodes_.find(id);
    return it == nodes_.end() ? nullptr : it->second.get();
  }
  bool Live(NodeId id) {
    SimNode* n = Node(id);
    return n && n->up() && !retired_.count(id) && !paused_.count(id);
  }
  std::vector<NodeId> Ids(bool live_only) {
    std::vector<NodeId> out;
    for (const auto& [id, n] : nodes_) {
      if (retired_.count(id)) continue;
      if (!live_only || Live(id)) out.push_back(id);
    }
    return out;
  }
  // Live nodes a client would talk to: members by their own configuration
  // (not a joiner that has not learned it yet).
  std::vector<NodeId> ClientTargets() {
    std::vector<NodeId> out;
    for (NodeId id : Ids(true)) {
      const TrackerConfig& c = Node(id)->raw()->raft().tracker().config;
      if (c.voters.Contains(id) || c.learners.count(id)) out.push_back(id);
    }
    return out;
  }
  NodeId Pick(const std::vector<NodeId>& ids) {
    return ids.empty() ? kNoNode : ids[rng_.Below(ids.size())];
  }
  // The live leader of the highest term, if any.
  NodeId Leader();

  void AddNode(NodeId id, const std::vector<NodeId>& bootstrap);
  void StartNode(NodeId id);
  void CrashNode(NodeId id, const std::string& why);
  void Drain(NodeId id);
  void Route(SimNode* n, ReadyOutcome& out, Index applied_before);
  void Deliver(InFlight f);
  void ReportSnap(const Message& m, uint64_t sender_incarnation, bool failed);
  void Check();
  void Step();

  void ProposeWrite(std::optional<uint64_t> retry_op);
  void IssueRead();
  void ServeReads();
  void RetryWrites();
  void InjectFault();
  void ProposeConfChange();
  void HealEverything();

  bool RunHeal();
  bool RunFlapping();
  bool RunFullRestart();

  const SimOptions opts_;
  Rng rng_;
  Rng mid_ready_rng_;  // only for mid-ready crashes
  uint64_t crash_mid_ready_per_mille_ = 0;
  bool in_chaos_ = false;  // faults (mid-ready crashes too) only in the chaos phase
  NodeOptions node_opts_;
  uint64_t now_ = 0;
  std::string trace_;
  std::map<NodeId, std::unique_ptr<SimNode>> nodes_;
  std::set<NodeId> retired_;
  std::set<NodeId> paused_;
  std::map<NodeId, uint64_t> unpause_at_;
  std::map<NodeId, uint64_t> restart_at_;
  NodeId next_id_ = 1;
  Network net_;
  Checker checker_;
  SimStats stats_;
  uint64_t fault_per_mille_ = 30;
  uint64_t client_per_mille_ = 300;

  // Clients.
  uint64_t next_op_ = 1;
  struct PendingWrite {
    Write write;
    uint64_t next_retry_tick = 0;
    int attempts = 0;
    // The leader that appended it, in that term: while it leads, the client
    // waits (as an etcd client waits until the leader changes).
    NodeId accepted_by = kNoNode;
    Term accepted_term = 0;
  };
  std::map<uint64_t, PendingWrite> pending_writes_;  // not yet applied anywhere
  Index completed_write_index_ = 0;                  // highest index of an applied write
  uint64_t next_read_ = 1;
  std::map<std::string, PendingRead> pending_reads_;

  // Membership: the first index that removed a node; once any member applies
  // a configuration after it without the node, the node is gone for good.
  std::map<NodeId, Index> removal_index_;
  NodeId last_leader_ = kNoNode;
  // Schedule of the commit-old-term bug mode.
  NodeId figure8_leader_ = kNoNode;
  uint64_t figure8_elected_at_ = 0;
  Index figure8_commit_ = 0;
};

NodeId Cluster::Leader() {
  NodeId best = kNoNode;
  Term best_term = 0;
  for (const auto& [id, n] : nodes_) {
    if (!Live(id)) continue;
    const Raft& r = n->raw()->raft();
    if (r.state() == StateType::kLeader && r.term() >= best_term) {
      best = id;
      best_term = r.term();
    }
  }
  return best;
}

void Cluster::AddNode(NodeId id, const std::vector<NodeId>& bootstrap) {
  nodes_[id] = std::make_unique<SimNode>(id, bootstrap, node_opts_);
  next_id_ = std::max(next_id_, id + 1);
  StartNode(id);
}

void Cluster::StartNode(NodeId id) {
  SimNode* n = Node(id);
  // A durable entry of a term the durable hard state never reached means a
  // term (and maybe a vote) was acted on before it was persisted.
  const MemoryStorage& disk = n->storage();
  auto last_term = disk.TermAt(disk.LastIndex());
  if (last_term.ok() && *last_term > disk.hard_state().term) {
    checker_.Fail("persisted-term-behind-log",
                  absl::StrCat("node ", id, " restarts with durable term ", disk.hard_state().term,
                               " but its durable log ends with term ", *last_term));
    return;
  }
  std::function<void(const std::string&)> sink;
  if (opts_.trace) sink = [this](const std::string& e) { Trace("raft " + e); };
  uint64_t seed = HashMix(opts_.seed, id * 1000003 + n->incarnation());
  if (auto s = n->Start(seed, std::move(sink)); !s.ok()) {
    checker_.Fail("node-start-failed", absl::StrCat("node ", id, ": ", s.message()));
    return;
  }
  checker_.OnRestart(id);
  restart_at_.erase(id);
  Trace(absl::StrCat("start node ", id, " incarnation ", n->incarnation(), " applied ",
                     n->state_machine().applied, " ", Describe(n->storage().hard_state())));
  Drain(id);
}

void Cluster::CrashNode(NodeId id, const std::string& why) {
  SimNode* n = Node(id);
  if (!n || !n->up()) return;
  n->Crash();
  paused_.erase(id);
  unpause_at_.erase(id);
  Trace(absl::StrCat("crash node ", id, " (", why, ")"));
}

void Cluster::Drain(NodeId id) {
  SimNode* n = Node(id);
  for (int i = 0; i < kReadyLoopsMax && n && n->up() && n->raw()->HasReady(); i++) {
    if (in_chaos_ && crash_mid_ready_per_mille_ > 0 &&
        mid_ready_rng_.Chance(crash_mid_ready_per_mille_)) {
      for (const Message& m : n->CrashMidReady()) {
        int copies = net_.Send(m, n->incarnation(), now_, mid_ready_rng_);
        Trace(absl::StrCat("send ", Describe(m), " (before persisting)",
                           copies == 0 ? " DROPPED" : ""));
      }
      stats_.crashes++;
      stats_.mid_ready_crashes++;
      paused_.erase(id);
      unpause_at_.erase(id);
      Trace(
          absl::StrCat("crash node ", id, " (mid-ready: early messages left, nothing persisted)"));
      restart_at_[id] = now_ + 5 + mid_ready_rng_.Below(80);
      return;
    }
    Index applied_before = n->state_machine().applied;
    auto out = n->HandleReady();
    if (!out.ok()) {
      checker_.Fail("node-ready-failed", absl::StrCat("node ", id, ": ", out.status().message()));
      return;
    }
    Route(n, *out, applied_before);
    if (Failed()) return;
  }
}

void Cluster::Route(SimNode* n, ReadyOutcome& out, Index applied_before) {
  const NodeId id = n->id();
  if (out.soft_state) {
    Trace(absl::StrCat("node ", id, " soft state ", StateName(out.soft_state->state), " lead ",
                       out.soft_state->lead));
    if (out.soft_state->state == StateType::kLeader) {
      stats_.elections++;
      if (id != last_leader_) stats_.leader_changes++;
      last_leader_ = id;
    }
  }
  if (out.hard_state_persisted) {
    Trace(absl::StrCat("node ", id, " persist ", Describe(*out.hard_state_persisted)));
    checker_.OnHardStatePersisted(id, *out.hard_state_persisted);
  }
  if (out.snapshot_refused_by_storage) {
    checker_.Fail("stale-snapshot", absl::StrCat("node ", id,
                                                 " was handed a snapshot older than the one its "
                                                 "storage holds"));
    return;
  }
  if (!out.entries_persisted.empty()) {
    Trace(absl::StrCat("node ", id, " persist entries [", out.entries_persisted.front().index, "..",
                       out.entries_persisted.back().index, "] last term ",
                       out.entries_persisted.back().term));
    checker_.OnEntriesPersisted(id, out.entries_persisted, out.term_before_entries);
  }
  std::vector<NodeId> unreachable;
  for (const Message& m : out.messages) {
    int copies = net_.Send(m, n->incarnation(), now_, rng_);
    Trace(absl::StrCat("send ", Describe(m), copies == 0 ? " DROPPED" : "",
                       copies == 2 ? " DUPLICATED" : ""));
    if (copies == 0 && m.type == MessageType::kSnap) ReportSnap(m, n->incarnation(), true);
    // A cut link is what a transport notices: tell the core.
    if (copies == 0 && m.type == MessageType::kApp && net_.Blocked(m.from, m.to)) {
      unreachable.push_back(m.to);
    }
  }
  for (NodeId to : unreachable) n->raw()->ReportUnreachable(to);
  Index applied = applied_before;
  // Removed members stop once this Ready is routed (one may be this node).
  std::vector<NodeId> to_retire;
  if (out.snapshot_restored) {
    stats_.snapshots_installed++;
    Trace(absl::StrCat("node ", id, " restore snapshot index ",
                       out.snapshot_restored->metadata.index, " term ",
                       out.snapshot_restored->metadata.term));
    checker_.OnSnapshotRestored(id, *out.snapshot_restored, applied_before);
    applied = out.snapshot_restored->metadata.index;
  }
  for (const auto& a : out.applied) {
    const Entry& e = a.entry;
    size_t known = checker_.committed_count();
    checker_.OnApplied(id, e, a.running_hash, applied, n->raw()->raft().term());
    applied = e.index;
    bool first = checker_.committed_count() > known;
    if (first) Trace(absl::StrCat("commit ", Describe(e)));
    if (e.type == EntryType::kNormal) {
      if (auto w = DecodeWrite(e.data)) {
        if (pending_writes_.erase(w->op_id) > 0 || first) {
          completed_write_index_ = std::max(completed_write_index_, e.index);
        }
      }
      continue;
    }
    if (first && a.conf_after) stats_.conf_changes++;
    if (auto cc = DecodeConfChange(e.data); cc.ok()) {
      for (const ConfChangeSingle& c : cc->changes) {
        if (c.type != ConfChangeSingle::Type::kRemoveNode) continue;
        auto [it, inserted] = removal_index_.emplace(c.node_id, e.index);
        if (!inserted) it->second = std::min(it->second, e.index);
      }
    }
    if (!a.conf_after) continue;
    Trace(absl::StrCat("node ", id, " applied conf ", Describe(*a.conf_after)));
    for (const auto& [gone, at] : removal_index_) {
      if (at <= e.index && !InConf(*a.conf_after, gone) && !retired_.count(gone)) {
        retired_.insert(gone);
        to_retire.push_back(gone);
      }
    }
  }
  for (const ReadState& rs : out.read_states) {
    auto it = pending_reads_.find(rs.request_ctx);
    if (it == pending_reads_.end() || it->second.node != id ||
        it->second.incarnation != n->incarnation()) {
      continue;
    }
    it->second.answered = true;
    it->second.read_index = rs.index;
    Trace(absl::StrCat("node ", id, " read ", rs.request_ctx, " index ", rs.index));
  }
  if (out.snapshot_created) {
    Trace(absl::StrCat("node ", id, " snapshot at ", n->state_machine().applied, " first index ",
                       n->storage().FirstIndex()));
  }
  for (NodeId gone : to_retire) CrashNode(gone, "removed from the configuration");
}

void Cluster::ReportSnap(const Message& m, uint64_t sender_incarnation, bool failed) {
  SimNode* s = Node(m.from);
  if (!s || !s->up() || s->incarnation() != sender_incarnation || retired_.count(m.from)) return;
  s->raw()->ReportSnapshot(m.to, failed);
  Trace(absl::StrCat("node ", m.from, " report snapshot to ", m.to, failed ? " failed" : " ok"));
  Drain(m.from);
}

void Cluster::Deliver(InFlight f) {
  const Message& m = f.msg;
  SimNode* n = Node(m.to);
  if (!n || !n->up() || retired_.count(m.to) || net_.Blocked(m.from, m.to)) {
    net_.dropped++;
    Trace(absl::StrCat("drop ", Describe(m)));
    if (m.type == MessageType::kSnap) ReportSnap(m, f.sender_incarnation, true);
    return;
  }
  Trace(absl::StrCat("deliver ", Describe(m)));
  (void)n->raw()->Step(m);
  Drain(m.to);
  if (m.type == MessageType::kSnap) ReportSnap(m, f.sender_incarnation, false);
}

void Cluster::Check() {
  std::map<NodeId, SimNode*> up;
  for (const auto& [id, n] : nodes_) {
    if (n->up() && !retired_.count(id)) up[id] = n.get();
  }
  checker_.AfterStep(up);
}

void Cluster::Step() {
  now_++;
  for (auto it = unpause_at_.begin(); it != unpause_at_.end();) {
    if (it->second <= now_) {
      paused_.erase(it->first);
      Trace(absl::StrCat("resume node ", it->first));
      it = unpause_at_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = restart_at_.begin(); it != restart_at_.end();) {
    NodeId id = it->first;
    bool due = it->second <= now_;
    ++it;
    if (due && !retired_.count(id) && !Node(id)->up()) StartNode(id);
    if (Failed()) return;
  }
  while (auto f = net_.PopDue(now_, paused_)) {
    Deliver(*std::move(f));
    Check();
    if (Failed()) return;
  }
  for (const auto& [id, n] : nodes_) {
    if (!Live(id)) continue;
    if (auto hs = n->FlushDeferred()) {
      Trace(absl::StrCat("node ", id, " persist deferred ", Describe(*hs)));
      checker_.OnHardStatePersisted(id, *hs);
    }
    n->raw()->Tick();
    Drain(id);
    if (Failed()) return;
  }
  ServeReads();
  Check();
}

void Cluster::ProposeWrite(std::optional<uint64_t> retry_op) {
  NodeId target = Leader();
  if (target == kNoNode || rng_.Chance(300)) target = Pick(ClientTargets());
  if (target == kNoNode) return;
  Write w;
  if (retry_op) {
    PendingWrite& p = pending_writes_[*retry_op];
    w = p.write;
    // Back off like a real client, or a slow configuration (one-entry
    // messages, a one-message window) drowns in duplicate proposals.
    p.attempts++;
    p.next_retry_tick = now_ + std::min<uint64_t>(kRetryBackoffMaxTicks,
                                                  kRetryEveryTicks << std::min(p.attempts, 5));
  } else {
    if (pending_writes_.size() >= kPendingWritesMax) return;
    w = Write{next_op_++, absl::StrCat("k", rng_.Below(8)), absl::StrCat("v", next_op_ - 1)};
    pending_writes_[w.op_id] = PendingWrite{w, now_ + 2 * kRetryEveryTicks, 0};
  }
  auto s = Node(target)->raw()->Propose(EncodeWrite(w));
  const Raft& r = Node(target)->raw()->raft();
  if (s.ok() && r.state() == StateType::kLeader) {
    PendingWrite& p = pending_writes_[w.op_id];
    p.accepted_by = target;
    p.accepted_term = r.term();
  }
  Trace(absl::StrCat("client propose op ", w.op_id, " at node ", target,
                     s.ok() ? "" : absl::StrCat(" refused: ", s.message())));
  Drain(target);
}

void Cluster::RetryWrites() {
  std::vector<uint64_t> ops;
  for (const auto& [op, p] : pending_writes_) {
    if (p.next_retry_tick > now_) continue;
    if (p.accepted_by != kNoNode && Live(p.accepted_by)) {
      const Raft& r = Node(p.accepted_by)->raw()->raft();
      if (r.state() == StateType::kLeader && r.term() == p.accepted_term) continue;
    }
    ops.push_back(op);
  }
  for (size_t i = 0; i < ops.size() && i < 8; i++) ProposeWrite(ops[i]);
}

void Cluster::IssueRead() {
  if (pending_reads_.size() >= kPendingReadsMax) return;
  NodeId target = Pick(ClientTargets());
  if (target == kNoNode) return;
  std::string ctx = absl::StrCat("r", next_read_++);
  PendingRead r;
  r.node = target;
  r.incarnation = Node(target)->incarnation();
  r.floor_index = completed_write_index_;
  r.issued_tick = now_;
  if (opts_.bug == "serve-read-locally") {
    // Simulator-side bug: answer from local state without asking a quorum.
    r.answered = true;
    pending_reads_[ctx] = r;
    Trace(absl::StrCat("client read ", ctx, " at node ", target, " floor ", r.floor_index,
                       " served locally"));
    return;
  }
  pending_reads_[ctx] = r;
  auto s = Node(target)->raw()->ReadIndex(ctx);
  Trace(absl::StrCat("client read ", ctx, " at node ", target, " floor ", r.floor_index,
                     s.ok() ? "" : absl::StrCat(" refused: ", s.message())));
  if (!s.ok()) pending_reads_.erase(ctx);
  Drain(target);
}

void Cluster::ServeReads() {
  for (auto it = pending_reads_.begin(); it != pending_reads_.end();) {
    PendingRead& r = it->second;
    SimNode* n = Node(r.node);
    bool gone = !n->up() || n->incarnation() != r.incarnation || retired_.count(r.node) ||
                now_ - r.issued_tick > kReadExpiryTicks;
    if (gone) {
      it = pending_reads_.erase(it);
      continue;
    }
    if (!r.answered || n->state_machine().applied < r.read_index) {
      ++it;
      continue;
    }
    Index served = n->state_machine().applied;
    Trace(absl::StrCat("node ", r.node, " serve read ", it->first, " at applied ", served));
    if (served < r.floor_index) {
      checker_.Fail("stale-read",
                    absl::StrCat("read ", it->first, " at node ", r.node, " served state at index ",
                                 served, " (read index ", r.read_index, ") but a write at index ",
                                 r.floor_index, " completed before it began"));
      return;
    }
    stats_.reads++;
    it = pending_reads_.erase(it);
  }
}

void Cluster::HealEverything() {
  net_.HealAll();
  net_.set_faults(LinkFaults{0, 0, 1, 3});
  for (NodeId id : Ids(false)) {
    if (!Node(id)->up()) StartNode(id);
  }
  paused_.clear();
  unpause_at_.clear();
  Trace("heal: network healed, every node running");
}

void Cluster::ProposeConfChange() {
  NodeId lead = Leader();
  if (lead == kNoNode) return;
  const TrackerConfig& cfg = Node(lead)->raw()->raft().tracker().config;
  if (!cfg.voters.outgoing.empty()) return;
  std::vector<NodeId> voters(cfg.voters.incoming.ids().begin(), cfg.voters.incoming.ids().end());
  std::vector<NodeId> learners(cfg.learners.begin(), cfg.learners.end());
  size_t members = voters.size() + learners.size();
  ConfChange cc;
  using T = ConfChangeSingle::Type;
  switch (rng_.Below(5)) {
    case 0: {  // add a brand-new member as a learner
      // Joiners start with empty storage and learn the membership from a
      // snapshot, so every member must have compacted past index 1.
      if (members >= kMembersMax) return;
      for (NodeId id : voters) {
        if (Node(id)->storage().FirstIndex() <= 1) return;
      }
      for (NodeId id : learners) {
        if (Node(id)->storage().FirstIndex() <= 1) return;
      }
      NodeId fresh = next_id_;
      AddNode(fresh, {});
      cc.changes.push_back({T::kAddLearnerNode, fresh});
      break;
    }
    case 1:  // promote a learner
      if (learners.empty() || voters.size() >= 7) return;
      cc.changes.push_back({T::kAddNode, Pick(learners)});
      break;
    case 2:  // remove a voter
      if (voters.size() <= 3) return;
      cc.changes.push_back({T::kRemoveNode, Pick(voters)});
      break;
    case 3:  // joint: promote a learner and remove a voter at once
      if (learners.empty() || voters.size() < 3) return;
      cc.changes.push_back({T::kAddNode, Pick(learners)});
      cc.changes.push_back({T::kRemoveNode, Pick(voters)});
      cc.transition =
          rng_.Chance(500) ? ConfChange::Transition::kJointImplicit : ConfChange::Transition::kAuto;
      break;
    case 4:  // remove a learner
      if (learners.empty()) return;
      cc.changes.push_back({T::kRemoveNode, Pick(learners)});
      break;
  }
  auto s = Node(lead)->raw()->ProposeConfChange(cc);
  Trace(absl::StrCat("propose conf change ", Describe(cc), " at leader ", lead,
                     s.ok() ? "" : absl::StrCat(" refused: ", s.message())));
  Drain(lead);
}

void Cluster::InjectFault() {
  std::vector<NodeId> all = Ids(false);
  std::vector<NodeId> live = Ids(true);
  switch (rng_.Below(opts_.bug == "commit-old-term" ? 14 : 13)) {
    case 12:
    case 13: {  // isolate the leader: it keeps appending entries nobody gets
      NodeId lead = Leader();
      if (lead == kNoNode) return;
      for (NodeId y : all) {
        if (y == lead) continue;
        net_.Cut(lead, y);
        net_.Cut(y, lead);
      }
      stats_.partitions++;
      Trace(absl::StrCat("isolate leader ", lead));
      break;
    }
    case 11:  // the leader is the most interesting node to lose
    case 0: {
      NodeId id = Leader();
      if (id == kNoNode || rng_.Chance(500)) id = Pick(live);
      if (id == kNoNode) return;
      stats_.crashes++;
      CrashNode(id, "fault");
      restart_at_[id] = now_ + 5 + rng_.Below(80);
      break;
    }
    case 1: {  // symmetric partition into two sides
      std::vector<NodeId> a, b;
      for (NodeId id : all) (rng_.Chance(500) ? a : b).push_back(id);
      for (NodeId x : a) {
        for (NodeId y : b) {
          net_.Cut(x, y);
          net_.Cut(y, x);
        }
      }
      stats_.partitions++;
      Trace(
          absl::StrCat("partition {", absl::StrJoin(a, ","), "} | {", absl::StrJoin(b, ","), "}"));
      break;
    }
    case 2: {  // one-way: x no longer hears from anyone
      NodeId x = Pick(all);
      for (NodeId y : all) {
        if (y != x) net_.Cut(y, x);
      }
      stats_.partitions++;
      Trace(absl::StrCat("one-way partition: node ", x, " hears nobody"));
      break;
    }
    case 3: {  // partial: x reaches only p
      NodeId x = Pick(all);
      NodeId p = Pick(all);
      if (x == p) return;
      for (NodeId y : all) {
        if (y == x || y == p) continue;
        net_.Cut(x, y);
        net_.Cut(y, x);
      }
      stats_.partitions++;
      Trace(absl::StrCat("partial partition: node ", x, " reaches only ", p));
      break;
    }
    case 4: {  // one directed link
      NodeId x = Pick(all), y = Pick(all);
      if (x == y) return;
      net_.Cut(x, y);
      stats_.partitions++;
      Trace(absl::StrCat("cut link ", x, "->", y));
      break;
    }
    case 5:
      net_.HealAll();
      Trace("heal network");
      break;
    case 6: {
      NodeId id = Pick(live);
      if (id == kNoNode) return;
      paused_.insert(id);
      unpause_at_[id] = now_ + 3 + rng_.Below(40);
      Trace(absl::StrCat("pause node ", id, " until t=", unpause_at_[id]));
      break;
    }
    case 7: {
      LinkFaults f;
      f.drop_per_mille = rng_.Below(4) == 0 ? 0 : rng_.Below(200);
      f.duplicate_per_mille = rng_.Below(100);
      f.delay_min_ticks = 1;
      f.delay_max_ticks = 1 + rng_.Below(8);
      net_.set_faults(f);
      Trace(absl::StrCat("link faults drop=", f.drop_per_mille, " dup=", f.duplicate_per_mille,
                         " delay=", f.delay_min_ticks, "..", f.delay_max_ticks));
      break;
    }
    case 8:
    case 9:
      ProposeConfChange();
      break;
    case 10: {
      NodeId lead = Leader();
      if (lead == kNoNode) return;
      const auto& ids = Node(lead)->raw()->raft().tracker().config.voters.incoming.ids();
      std::vector<NodeId> voters(ids.begin(), ids.end());
      NodeId to = Pick(voters);
      Trace(absl::StrCat("transfer leadership from ", lead, " to ", to));
      Node(lead)->raw()->TransferLeader(to);
      Drain(lead);
      break;
    }
  }
}

// After healing, a leader must appear within a bound and every pending write
// must commit within another.
bool Cluster::RunHeal() {
  HealEverything();
  // Election timeouts are randomized in [10, 20) ticks; allow 24 base timeouts.
  constexpr uint64_t kLeaderBoundTimeouts = 24;
  const uint64_t leader_bound = now_ + kLeaderBoundTimeouts * kElectionTicks;
  const uint64_t writes_bound = leader_bound + 40 * kElectionTicks;
  bool leader_seen = false;
  while (!Failed()) {
    Step();
    if (Failed()) return false;
    if (now_ % kRetryEveryTicks == 0) RetryWrites();
    NodeId lead = Leader();
    // A leader must appear within the bound; later changes (a leader that
    // removed itself, a transfer) are fine as long as the writes commit.
    if (lead != kNoNode) leader_seen = true;
    if (!leader_seen && now_ > leader_bound) {
      checker_.Fail("no-leader-after-heal", absl::StrCat("no leader ", kLeaderBoundTimeouts,
                                                         " election timeouts after healing"));
      return false;
    }
    if (lead != kNoNode && pending_writes_.empty()) return true;
    if (now_ > writes_bound) {
      checker_.Fail("writes-stuck-after-heal",
                    absl::StrCat(pending_writes_.size(), " writes pending after healing, first op ",
                                 pending_writes_.begin()->first));
      return false;
    }
  }
  return false;
}

// A member that hears nobody, or reaches only one peer, must not keep
// deposing a healthy leader (PreVote + CheckQuorum).
bool Cluster::RunFlapping() {
  NodeId lead = Leader();
  if (lead == kNoNode) return true;
  // Let the leader's lease settle: every follower hears it.
  for (int i = 0; i < 2 * kElectionTicks && !Failed(); i++) Step();
  lead = Leader();
  if (Failed() || lead == kNoNode) return !Failed();
  const auto& ids = Node(lead)->raw()->raft().tracker().config.voters.incoming.ids();
  std::vector<NodeId> followers;
  for (NodeId id : ids) {
    if (id != lead) followers.push_back(id);
  }
  if (followers.size() < 2) return true;
  NodeId flapper = Pick(followers);
  std::vector<NodeId> all = Ids(false);
  bool one_way = rng_.Chance(500);
  if (one_way) {
    for (NodeId y : all) {
      if (y != flapper) net_.Cut(y, flapper);
    }
  } else {
    NodeId p = kNoNode;
    while (p == kNoNode || p == flapper) p = Pick(followers);
    for (NodeId y : all) {
      if (y == flapper || y == p) continue;
      net_.Cut(flapper, y);
      net_.Cut(y, flapper);
    }
  }
  Trace(absl::StrCat("flapping phase: node ", flapper,
                     one_way ? " hears nobody" : " reaches one peer", "; leader ", lead));
  Term term_before = Node(lead)->raw()->raft().term();
  uint64_t changes = 0;
  NodeId seen = lead;
  for (int i = 0; i < 30 * kElectionTicks && !Failed(); i++) {
    Step();
    if (rng_.Chance(client_per_mille_)) ProposeWrite(std::nullopt);
    if (now_ % kRetryEveryTicks == 0) RetryWrites();
    NodeId l = Leader();
    if (l != kNoNode && l != seen) {
      changes++;
      seen = l;
    }
  }
  if (Failed()) return false;
  Term term_after = 0;
  for (NodeId id : Ids(true)) {
    if (id != flapper) term_after = std::max(term_after, Node(id)->raw()->raft().term());
  }
  const uint64_t kChangesMax = 1;
  if (changes > kChangesMax || term_after > term_before + 1) {
    checker_.Fail("leader-flapping",
                  absl::StrCat("node ", flapper, (one_way ? " (one-way)" : " (partial)"),
                               " caused ", changes, " leader changes and terms ", term_before, "->",
                               term_after, " in ", 30, " election timeouts"));
    return false;
  }
  return true;
}

// Every node crashes at once and restarts; every committed entry must come
// back and be applied everywhere.
bool Cluster::RunFullRestart() {
  for (NodeId id : Ids(false)) CrashNode(id, "full-cluster crash");
  stats_.crashes += Ids(false).size();
  HealEverything();
  const Index target = checker_.max_committed_index();
  const uint64_t bound = now_ + 60 * kElectionTicks;
  while (!Failed()) {
    Step();
    if (Failed()) return false;
    NodeId lead = Leader();
    bool done = lead != kNoNode;
    if (done) {
      ConfState cs = Node(lead)->raw()->raft().tracker().GetConfState();
      for (NodeId id : Ids(false)) {
        if (InConf(cs, id) && Node(id)->state_machine().applied < target) done = false;
      }
    }
    if (done) return true;
    if (now_ > bound) {
      checker_.Fail("committed-entry-lost",
                    absl::StrCat("after a full restart not every member applied index ", target,
                                 " within ", 60, " election timeouts"));
      return false;
    }
  }
  return false;
}

SimResult Cluster::Run() {
  int n = opts_.nodes;
  if (n == 0) n = 3 + 2 * static_cast<int>(rng_.Below(3));
  node_opts_.election_ticks = kElectionTicks;
  node_opts_.snapshot_every_entries = 5 + static_cast<int>(rng_.Below(16));
  node_opts_.compact_lag_entries = rng_.Below(6);
  // Tiny messages carry one entry each, which opens more interleavings.
  const uint64_t kMsgBytes[] = {1, 256, 4096};
  node_opts_.max_msg_bytes = kMsgBytes[rng_.Below(3)];
  const size_t kInflight[] = {1, 2, 4, 8, 256};
  node_opts_.max_inflight_msgs = kInflight[rng_.Below(5)];
  if (opts_.bug == "commit-old-term") node_opts_.max_msg_bytes = 1;
  node_opts_.pre_vote_and_check_quorum = !opts_.disable_pre_vote;
  fault_per_mille_ = 20 + rng_.Below(50);
  client_per_mille_ = 150 + rng_.Below(400);
  uint64_t read_per_mille = 30 + rng_.Below(100);
  // Membership churn on top of the faults: none in some seeds, heavy in others.
  uint64_t conf_per_mille = rng_.Below(4) == 0 ? 0 : rng_.Below(25);
  if (opts_.bug == "vote-without-log-check") node_opts_.bugs.vote_without_log_check = true;
  if (opts_.bug == "commit-old-term") node_opts_.bugs.commit_old_term_by_counting = true;
  if (opts_.bug == "accept-stale-snapshot") node_opts_.bugs.accept_stale_snapshot = true;
  if (opts_.bug == "vote-before-persist") node_opts_.vote_before_persist = true;
  crash_mid_ready_per_mille_ = opts_.crash_mid_ready_per_mille;
  if (opts_.bug == "ack-before-persist") {
    node_opts_.ack_before_persist = true;
    crash_mid_ready_per_mille_ = std::max<uint64_t>(crash_mid_ready_per_mille_, 20);
  }
  Trace(absl::StrCat("seed ", opts_.seed, " nodes ", n, " snapshot_every ",
                     node_opts_.snapshot_every_entries, " compact_lag ",
                     node_opts_.compact_lag_entries, " max_msg_bytes ", node_opts_.max_msg_bytes,
                     " max_inflight ", node_opts_.max_inflight_msgs, " fault_per_mille ",
                     fault_per_mille_, " bug '", opts_.bug, "'"));
  std::vector<NodeId> founders;
  for (int i = 1; i <= n; i++) founders.push_back(static_cast<NodeId>(i));
  for (NodeId id : founders) AddNode(id, founders);
  net_.set_faults(LinkFaults{0, 0, 1, 3});

  in_chaos_ = true;
  for (int i = 0; i < opts_.chaos_steps && !Failed(); i++) {
    if (rng_.Chance(fault_per_mille_)) InjectFault();
    if (opts_.bug == "commit-old-term") {
      // Figure 8 of the Raft paper: leaders cut off a few ticks after their
      // election, so each leaves a tail of its own term on few nodes while
      // the previous one returns and re-replicates an older tail.
      // Two moments matter: right after the election (its entries stay on
      // it alone) and right after its first commits.
      NodeId lead = Leader();
      bool isolate = false;
      if (lead != kNoNode && lead != figure8_leader_) {
        figure8_leader_ = lead;
        figure8_elected_at_ = now_;
        figure8_commit_ = Node(lead)->raw()->raft().log().committed();
        isolate = rng_.Chance(400);
      } else if (lead != kNoNode && now_ - figure8_elected_at_ <= 15) {
        Index commit = Node(lead)->raw()->raft().log().committed();
        if (commit > figure8_commit_) {
          figure8_commit_ = commit;
          isolate = rng_.Chance(500);
        }
      }
      if (isolate) {
        net_.HealAll();
        for (NodeId y : Ids(false)) {
          if (y == lead) continue;
          net_.Cut(lead, y);
          net_.Cut(y, lead);
        }
        stats_.partitions++;
        Trace(absl::StrCat("isolate new leader ", lead));
      }
    }
    if (opts_.bug == "vote-before-persist") {
      // Crash nodes in the window the bug opens, between sending a vote and
      // persisting it.
      for (NodeId id : Ids(true)) {
        if (Node(id)->has_deferred_hard_state() && rng_.Chance(300)) {
          stats_.crashes++;
          CrashNode(id, "fault in the persist window");
          restart_at_[id] = now_ + 1 + rng_.Below(3);
        }
      }
    }
    if (Failed()) break;
    if (rng_.Chance(client_per_mille_)) ProposeWrite(std::nullopt);
    if (rng_.Chance(read_per_mille)) IssueRead();
    if (rng_.Chance(conf_per_mille)) ProposeConfChange();
    if (now_ % kRetryEveryTicks == 0) RetryWrites();
    if (Failed()) break;
    Step();
  }
  in_chaos_ = false;  // the liveness phases run fault-free
  if (!Failed() && RunHeal() && RunFlapping()) {
    net_.HealAll();
    if (RunHeal()) RunFullRestart();
  }

  SimResult r;
  r.violation = checker_.violation();
  stats_.committed = checker_.committed_count();
  stats_.dropped = net_.dropped;
  stats_.duplicated = net_.duplicated;
  r.stats = stats_;
  if (r.violation) {
    Trace(absl::StrCat("VIOLATION ", r.violation->name, ": ", r.violation->detail));
  }
  r.trace = std::move(trace_);
  r.ticks = now_;
  return r;
}

}  // namespace

absl::StatusOr<SimResult> RunSimulation(const SimOptions& opts) {
  if (!opts.bug.empty() &&
      std::find(KnownBugs().begin(), KnownBugs().end(), opts.bug) == KnownBugs().end()) {
    return absl::InvalidArgumentError("unknown bug '" + opts.bug + "'");
  }
  if (opts.nodes != 0 && opts.nodes != 3 && opts.nodes != 5 && opts.nodes != 7) {
    return absl::InvalidArgumentError("nodes must be 3, 5 or 7");
  }
  Cluster c(opts);
  return c.Run();
}

}  // namespace ganglion::raft::sim
