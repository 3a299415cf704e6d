#include "raft/confchange.h"

#include "absl/strings/str_cat.h"

namespace ganglion::raft {

namespace {
bool Joint(const TrackerConfig& cfg) {
  return !cfg.voters.outgoing.empty();
}

ConfChangeResult Copy(const ProgressTracker& t) {
  return {t.config, t.progress};
}
}  // namespace

absl::Status CheckConfigInvariants(const TrackerConfig& cfg, const ProgressMap& progress) {
  for (NodeId id : cfg.voters.Ids()) {
    if (!progress.count(id)) return absl::InternalError(absl::StrCat("no progress for voter ", id));
  }
  for (NodeId id : cfg.learners) {
    auto it = progress.find(id);
    if (it == progress.end()) {
      return absl::InternalError(absl::StrCat("no progress for learner ", id));
    }
    if (cfg.voters.Contains(id)) {
      return absl::InternalError(absl::StrCat(id, " is both learner and voter"));
    }
    if (!it->second.is_learner) {
      return absl::InternalError(absl::StrCat(id, " is a learner but its progress is not"));
    }
  }
  for (NodeId id : cfg.learners_next) {
    auto it = progress.find(id);
    if (it == progress.end()) {
      return absl::InternalError(absl::StrCat("no progress for learner-next ", id));
    }
    if (!cfg.voters.outgoing.contains(id)) {
      return absl::InternalError(absl::StrCat(id, " is in learners_next but not outgoing"));
    }
    if (it->second.is_learner) {
      return absl::InternalError(absl::StrCat(id, " is in learners_next but already a learner"));
    }
  }
  for (const auto& [id, pr] : progress) {
    if (!cfg.voters.Contains(id) && !cfg.learners.count(id)) {
      return absl::InternalError(absl::StrCat("progress for ", id, " which is not a member"));
    }
  }
  if (!Joint(cfg)) {
    if (!cfg.learners_next.empty()) return absl::InternalError("learners_next outside joint");
    if (cfg.auto_leave) return absl::InternalError("auto_leave outside joint");
  }
  return absl::OkStatus();
}

absl::StatusOr<ConfChangeResult> Changer::EnterJoint(
    bool auto_leave, const std::vector<ConfChangeSingle>& ccs) const {
  ConfChangeResult r = Copy(tracker_);
  if (Joint(r.config)) return absl::FailedPreconditionError("config is already joint");
  if (r.config.voters.incoming.empty()) {
    return absl::FailedPreconditionError("can't make a zero-voter config joint");
  }
  r.config.voters.outgoing = r.config.voters.incoming;
  if (auto s = Apply(&r, ccs); !s.ok()) return s;
  r.config.auto_leave = auto_leave;
  if (auto s = CheckConfigInvariants(r.config, r.progress); !s.ok()) return s;
  return r;
}

absl::StatusOr<ConfChangeResult> Changer::LeaveJoint() const {
  ConfChangeResult r = Copy(tracker_);
  if (!Joint(r.config)) return absl::FailedPreconditionError("can't leave a non-joint config");
  for (NodeId id : r.config.learners_next) {
    r.config.learners.insert(id);
    r.progress.at(id).is_learner = true;
  }
  r.config.learners_next.clear();
  for (NodeId id : r.config.voters.outgoing.ids()) {
    if (!r.config.voters.incoming.contains(id) && !r.config.learners.count(id)) {
      r.progress.erase(id);
    }
  }
  r.config.voters.outgoing = MajorityConfig();
  r.config.auto_leave = false;
  if (auto s = CheckConfigInvariants(r.config, r.progress); !s.ok()) return s;
  return r;
}

absl::StatusOr<ConfChangeResult> Changer::Simple(const std::vector<ConfChangeSingle>& ccs) const {
  ConfChangeResult r = Copy(tracker_);
  if (Joint(r.config)) {
    return absl::FailedPreconditionError("can't apply simple config change in joint config");
  }
  if (auto s = Apply(&r, ccs); !s.ok()) return s;
  // One voter at a time keeps any two majorities overlapping.
  size_t changed = 0;
  const auto& before = tracker_.config.voters.incoming.ids();
  const auto& after = r.config.voters.incoming.ids();
  for (NodeId id : before) changed += after.count(id) ? 0 : 1;
  for (NodeId id : after) changed += before.count(id) ? 0 : 1;
  if (changed > 1) {
    return absl::FailedPreconditionError(
        "more than one voter changed without entering joint config");
  }
  if (auto s = CheckConfigInvariants(r.config, r.progress); !s.ok()) return s;
  return r;
}

absl::Status Changer::Apply(ConfChangeResult* r, const std::vector<ConfChangeSingle>& ccs) const {
  for (const auto& cc : ccs) {
    if (cc.node_id == kNoNode) continue;  // etcd ignores changes to node 0
    switch (cc.type) {
      case ConfChangeSingle::Type::kAddNode:
        MakeVoter(r, cc.node_id);
        break;
      case ConfChangeSingle::Type::kAddLearnerNode:
        MakeLearner(r, cc.node_id);
        break;
      case ConfChangeSingle::Type::kRemoveNode:
        Remove(r, cc.node_id);
        break;
    }
  }
  if (r->config.voters.incoming.empty()) return absl::FailedPreconditionError("removed all voters");
  return absl::OkStatus();
}

void Changer::MakeVoter(ConfChangeResult* r, NodeId id) const {
  auto it = r->progress.find(id);
  if (it == r->progress.end()) {
    InitProgress(r, id, false);
    return;
  }
  it->second.is_learner = false;
  r->config.learners.erase(id);
  r->config.learners_next.erase(id);
  r->config.voters.incoming.mutable_ids().insert(id);
}

void Changer::MakeLearner(ConfChangeResult* r, NodeId id) const {
  auto it = r->progress.find(id);
  if (it == r->progress.end()) {
    InitProgress(r, id, true);
    return;
  }
  if (it->second.is_learner) return;
  // Drop it as a voter but keep its progress: it stays a member.
  r->config.voters.incoming.mutable_ids().erase(id);
  r->config.learners.erase(id);
  r->config.learners_next.erase(id);
  if (r->config.voters.outgoing.contains(id)) {
    // Still a voter of the outgoing half: it becomes a learner on leaving.
    r->config.learners_next.insert(id);
  } else {
    it->second.is_learner = true;
    r->config.learners.insert(id);
  }
}

void Changer::Remove(ConfChangeResult* r, NodeId id) const {
  if (!r->progress.count(id)) return;
  r->config.voters.incoming.mutable_ids().erase(id);
  r->config.learners.erase(id);
  r->config.learners_next.erase(id);
  if (!r->config.voters.outgoing.contains(id)) r->progress.erase(id);
}

void Changer::InitProgress(ConfChangeResult* r, NodeId id, bool learner) const {
  if (learner) {
    r->config.learners.insert(id);
  } else {
    r->config.voters.incoming.mutable_ids().insert(id);
  }
  Progress pr(std::max<Index>(last_index_, 1), tracker_.inflight_count_max(),
              tracker_.inflight_bytes_max(), learner);
  // A new peer counts as active so CheckQuorum does not depose the leader
  // before the peer had a chance to answer.
  pr.recent_active = true;
  r->progress.emplace(id, std::move(pr));
}

absl::StatusOr<ConfChangeResult> RestoreConfig(const ProgressTracker& limits, Index last_index,
                                               const ConfState& cs) {
  using T = ConfChangeSingle::Type;
  ProgressTracker t(limits.inflight_count_max(), limits.inflight_bytes_max());
  auto step = [&](absl::StatusOr<ConfChangeResult> r) -> absl::Status {
    if (!r.ok()) return r.status();
    t.config = std::move(r->config);
    t.progress = std::move(r->progress);
    return absl::OkStatus();
  };
  std::vector<ConfChangeSingle> incoming;
  // The outgoing half is built first, one voter at a time; then a joint change
  // turns it into the incoming half.
  for (NodeId id : cs.voters_outgoing) {
    if (auto s = step(Changer(t, last_index).Simple({{T::kAddNode, id}})); !s.ok()) return s;
    incoming.push_back({T::kRemoveNode, id});
  }
  for (NodeId id : cs.voters) incoming.push_back({T::kAddNode, id});
  for (NodeId id : cs.learners) incoming.push_back({T::kAddLearnerNode, id});
  for (NodeId id : cs.learners_next) incoming.push_back({T::kAddLearnerNode, id});
  if (cs.voters_outgoing.empty()) {
    for (const auto& cc : incoming) {
      if (auto s = step(Changer(t, last_index).Simple({cc})); !s.ok()) return s;
    }
  } else {
    if (auto s = step(Changer(t, last_index).EnterJoint(cs.auto_leave, incoming)); !s.ok()) {
      return s;
    }
  }
  return ConfChangeResult{std::move(t.config), std::move(t.progress)};
}

}  // namespace ganglion::raft
