#include "raft/sim/node.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ganglion::raft::sim {

uint64_t HashMix(uint64_t h, uint64_t v) {
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t HashBytes(uint64_t h, const std::string& s) {
  uint64_t f = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) f = (f ^ c) * 0x100000001b3ULL;
  return HashMix(h, f);
}

uint64_t EntryHash(const Entry& e) {
  uint64_t h = HashMix(e.index, e.term);
  h = HashMix(h, static_cast<uint64_t>(e.type));
  return HashBytes(h, e.data);
}

void StateMachine::Apply(const Entry& e) {
  applied = e.index;
  hash = HashMix(hash, EntryHash(e));
  if (e.type != EntryType::kNormal || e.data.empty()) return;
  if (auto w = DecodeWrite(e.data)) kv[w->key] = w->value;
}

std::string StateMachine::Serialize() const {
  std::string out = absl::StrCat(applied, " ", hash, "\n");
  for (const auto& [k, v] : kv) absl::StrAppend(&out, k, " ", v, "\n");
  return out;
}

StateMachine StateMachine::Deserialize(const std::string& data) {
  StateMachine sm;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(data, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2) continue;
    if (first) {
      (void)absl::SimpleAtoi(parts[0], &sm.applied);
      (void)absl::SimpleAtoi(parts[1], &sm.hash);
      first = false;
    } else {
      sm.kv[std::string(parts[0])] = std::string(parts[1]);
    }
  }
  return sm;
}

std::string EncodeWrite(const Write& w) {
  return absl::StrCat("w ", w.op_id, " ", w.key, " ", w.value);
}

std::optional<Write> DecodeWrite(const std::string& data) {
  std::vector<absl::string_view> parts = absl::StrSplit(data, ' ');
  if (parts.size() != 4 || parts[0] != "w") return std::nullopt;
  Write w;
  if (!absl::SimpleAtoi(parts[1], &w.op_id)) return std::nullopt;
  w.key = std::string(parts[2]);
  w.value = std::string(parts[3]);
  return w;
}

SimNode::SimNode(NodeId id, const std::vector<NodeId>& bootstrap, NodeOptions opts)
    : id_(id), opts_(std::move(opts)), storage_(std::make_unique<MemoryStorage>()) {
  if (!bootstrap.empty()) {
    ConfState cs;
    cs.voters = bootstrap;
    storage_->SetConfState(cs);
  }
}

absl::Status SimNode::Start(uint64_t seed, std::function<void(const std::string&)> event_sink) {
  // Only what the storage holds survives: the state machine restarts from
  // the snapshot and the core re-delivers the committed entries after it.
  auto snap = storage_->GetSnapshot();
  if (!snap.ok()) return snap.status();
  sm_ = snap->metadata.index > 0 ? StateMachine::Deserialize(snap->data) : StateMachine{};
  conf_ = snap->metadata.conf_state;
  applied_since_snapshot_ = 0;
  deferred_hs_.reset();
  Config c;
  c.id = id_;
  c.election_ticks = opts_.election_ticks;
  c.heartbeat_ticks = 1;
  c.storage = storage_.get();
  c.applied = sm_.applied;
  c.random_seed = seed;
  c.event_sink = std::move(event_sink);
  c.bugs = opts_.bugs;
  c.max_msg_bytes = opts_.max_msg_bytes;
  c.pre_vote = opts_.pre_vote_and_check_quorum;
  c.check_quorum = opts_.pre_vote_and_check_quorum;
  c.max_inflight_msgs = opts_.max_inflight_msgs;
  auto raw = RawNode::Create(c);
  if (!raw.ok()) return raw.status();
  raw_ = *std::move(raw);
  incarnation_++;
  return absl::OkStatus();
}

void SimNode::Crash() {
  raw_.reset();
  sm_ = StateMachine{};
  deferred_hs_.reset();
}

std::vector<Message> SimNode::CrashMidReady() {
  Ready rd = raw_->GetReady();
  std::vector<Message> early;
  for (Message& m : rd.messages) {
    if (MaySendBeforePersist(m.type) ||
        (opts_.ack_before_persist && m.type == MessageType::kAppResp)) {
      early.push_back(std::move(m));
    }
  }
  Crash();
  return early;
}

std::optional<HardState> SimNode::FlushDeferred() {
  if (!deferred_hs_ || ++deferred_ticks_ < 2) return std::nullopt;
  storage_->SetHardState(*deferred_hs_);
  std::optional<HardState> hs = deferred_hs_;
  deferred_hs_.reset();
  return hs;
}

absl::StatusOr<ReadyOutcome> SimNode::HandleReady() {
  ReadyOutcome out;
  Ready rd = raw_->GetReady();
  out.soft_state = rd.soft_state;

  // 1. Persist (the node's one sync); in bug mode the hard state waits.
  if (rd.hard_state) {
    const HardState& durable = storage_->hard_state();
    bool vote_changed = rd.hard_state->term != durable.term || rd.hard_state->vote != durable.vote;
    if (opts_.vote_before_persist && vote_changed) {
      // Only the term and vote wait; the commit index is written now.
      if (!deferred_hs_) deferred_ticks_ = 0;
      deferred_hs_ = rd.hard_state;
      HardState partial = durable;
      partial.commit = rd.hard_state->commit;
      storage_->SetHardState(partial);
      out.hard_state_persisted = partial;
    } else {
      storage_->SetHardState(*rd.hard_state);
      out.hard_state_persisted = rd.hard_state;
    }
  }
  if (rd.snapshot) {
    if (!storage_->ApplySnapshot(*rd.snapshot).ok()) out.snapshot_refused_by_storage = true;
  }
  if (!rd.entries.empty()) {
    if (auto s = storage_->Append(rd.entries); !s.ok()) return s;
    out.entries_persisted = rd.entries;
    auto t = storage_->TermAt(rd.entries.front().index - 1);
    out.term_before_entries = t.ok() ? *t : 0;
  }
  // 2. Send.
  out.messages = std::move(rd.messages);

  // 3. Apply.
  if (rd.snapshot && !out.snapshot_refused_by_storage) {
    sm_ = StateMachine::Deserialize(rd.snapshot->data);
    conf_ = rd.snapshot->metadata.conf_state;
    applied_since_snapshot_ = 0;
    out.snapshot_restored = rd.snapshot;
  }
  for (const Entry& e : rd.committed_entries) {
    sm_.Apply(e);
    applied_since_snapshot_++;
    std::optional<ConfState> conf_after;
    if (e.type == EntryType::kConfChange) {
      auto cc = DecodeConfChange(e.data);
      if (!cc.ok()) return cc.status();
      // A rejected change leaves the configuration unchanged on every member.
      if (auto cs = raw_->ApplyConfChange(*cc); cs.ok()) {
        conf_ = *cs;
        conf_after = *cs;
      }
    }
    out.applied.push_back({e, sm_.hash, std::move(conf_after)});
  }
  out.read_states = std::move(rd.read_states);

  if (applied_since_snapshot_ >= opts_.snapshot_every_entries && sm_.applied > 0 &&
      sm_.applied <= storage_->LastIndex()) {
    auto snap = storage_->CreateSnapshot(sm_.applied, conf_, sm_.Serialize());
    if (snap.ok()) {
      out.snapshot_created = true;
      applied_since_snapshot_ = 0;
      if (sm_.applied > opts_.compact_lag_entries) {
        Index compact = sm_.applied - opts_.compact_lag_entries;
        if (compact >= storage_->FirstIndex()) (void)storage_->Compact(compact);
      }
    }
  }
  raw_->Advance(rd);
  return out;
}

}  // namespace ganglion::raft::sim
