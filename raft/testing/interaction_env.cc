#include "raft/testing/interaction_env.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ganglion::raft::testing {

namespace {

// Upper bound on stabilize rounds: a scenario that needs more is livelocked.
constexpr int kStabilizeRoundsMax = 1000;

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(what);
}

absl::StatusOr<uint64_t> ParseU64(const std::string& s) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v)) return Bad(absl::StrCat("not a number: '", s, "'"));
  return v;
}

std::string Single(const Command& c, const std::string& key, const std::string& def) {
  auto it = c.options.find(key);
  if (it == c.options.end() || it->second.empty()) return def;
  return it->second.front();
}

absl::StatusOr<bool> ParseBool(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  return Bad(absl::StrCat("not a bool: '", s, "'"));
}

std::string DescribeSnapshot(const Snapshot& s) {
  std::string out = absl::StrCat("Index:", s.metadata.index, " Term:", s.metadata.term, " ",
                                 Describe(s.metadata.conf_state));
  if (!s.data.empty()) absl::StrAppend(&out, " Data:\"", s.data, "\"");
  return out;
}

}  // namespace

absl::StatusOr<Command> ParseCommand(const std::string& line) {
  std::vector<std::string> tokens;
  std::string cur;
  int depth = 0;
  for (char ch : line) {
    if (ch == '(') depth++;
    if (ch == ')') depth--;
    if (depth < 0 || depth > 1) return Bad("unbalanced parentheses: " + line);
    if ((ch == ' ' || ch == '\t') && depth == 0) {
      if (!cur.empty()) tokens.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur.push_back(ch);
  }
  if (depth != 0) return Bad("unbalanced parentheses: " + line);
  if (!cur.empty()) tokens.push_back(std::move(cur));
  if (tokens.empty()) return Bad("empty command");

  Command c;
  c.name = tokens[0];
  for (size_t i = 1; i < tokens.size(); i++) {
    const std::string& t = tokens[i];
    size_t eq = t.find('=');
    if (eq == std::string::npos) {
      c.positional.push_back(t);
      continue;
    }
    std::string key = t.substr(0, eq);
    std::string value = t.substr(eq + 1);
    std::vector<std::string> vals;
    if (!value.empty() && value.front() == '(') {
      if (value.back() != ')') return Bad("bad list: " + t);
      for (absl::string_view v : absl::StrSplit(value.substr(1, value.size() - 2),
                                                absl::ByAnyChar(", "), absl::SkipEmpty())) {
        vals.emplace_back(v);
      }
    } else {
      vals.push_back(value);
    }
    c.options[key] = std::move(vals);
  }
  return c;
}

void InteractionEnv::Print(const std::string& line) {
  if (silent_) return;
  for (absl::string_view l : absl::StrSplit(line, '\n')) {
    if (l.empty()) continue;  // blank lines would end the expected block
    out_.push_back(std::string(indent_, ' ') + std::string(l));
  }
}

absl::StatusOr<NodeId> InteractionEnv::NodeArg(const std::string& s) const {
  auto id = ParseU64(s);
  if (!id.ok()) return id.status();
  if (*id == 0 || *id > nodes_.size()) return Bad(absl::StrCat("no node ", s));
  return *id;
}

absl::StatusOr<std::vector<NodeId>> InteractionEnv::NodesOrAll(
    const std::vector<std::string>& vals) const {
  if (!vals.empty()) return NodeList(vals);
  std::vector<NodeId> ids;
  for (NodeId id = 1; id <= nodes_.size(); id++) ids.push_back(id);
  return ids;
}

absl::StatusOr<std::vector<NodeId>> InteractionEnv::NodeList(
    const std::vector<std::string>& vals) const {
  std::vector<NodeId> ids;
  for (const auto& v : vals) {
    auto id = NodeArg(v);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
  }
  return ids;
}

bool InteractionEnv::IsCut(NodeId a, NodeId b) const {
  return cuts_.count({std::min(a, b), std::max(a, b)}) > 0;
}

std::string InteractionEnv::EncodeApplied(const Node& n, Index upto) const {
  std::vector<std::string> items;
  for (const auto& [index, data] : n.applied) {
    if (index <= upto) items.push_back(absl::StrCat(index, ":", data));
  }
  return absl::StrJoin(items, ",");
}

std::unique_ptr<RawNode> InteractionEnv::NewRawNode(Node& n) {
  auto raw = RawNode::Create(n.cfg);
  if (!raw.ok()) Fatal("RawNode::Create: " + raw.status().ToString());
  return *std::move(raw);
}

std::string InteractionEnv::Handle(const Command& c) {
  out_.clear();
  indent_ = 0;
  absl::Status s = [&]() -> absl::Status {
    const auto& pos = c.positional;
    auto need = [&](size_t n) -> absl::Status {
      if (pos.size() < n) return Bad(absl::StrCat(c.name, " needs ", n, " arguments"));
      return absl::OkStatus();
    };
    if (c.name == "add-nodes") return AddNodes(c);
    if (c.name == "log-level") {
      if (auto st = need(1); !st.ok()) return st;
      // silent: print nothing but errors (for setup steps the comments
      // describe); none: hide raft events; info: show everything.
      if (pos[0] != "silent" && pos[0] != "none" && pos[0] != "info") {
        return Bad("log-level is silent, none or info");
      }
      show_events_ = pos[0] == "info";
      silent_ = pos[0] == "silent";
      return absl::OkStatus();
    }
    if (c.name == "raft-state") {
      PrintRaftState();
      return absl::OkStatus();
    }
    if (c.name == "heal") {
      cuts_.clear();
      return absl::OkStatus();
    }
    if (c.name == "stabilize") {
      auto listed = NodesOrAll(pos);
      if (!listed.ok()) return listed.status();
      std::vector<NodeId> ids = *std::move(listed);
      return Stabilize(ids);
    }
    if (c.name == "deliver-msgs") {
      std::set<NodeId> drop;
      if (auto it = c.options.find("drop"); it != c.options.end()) {
        auto l = NodeList(it->second);
        if (!l.ok()) return l.status();
        drop.insert(l->begin(), l->end());
      }
      auto listed = NodesOrAll(pos);
      if (!listed.ok()) return listed.status();
      std::vector<NodeId> ids = *std::move(listed);
      bool any = false;
      for (NodeId id : ids) any |= DeliverTo(id, drop);
      if (!any) Print("no messages");
      return absl::OkStatus();
    }
    if (c.name == "propose-conf-change") return ProposeConfChange(c);
    if (c.name == "transfer-leadership") {
      auto from = NodeArg(Single(c, "from", ""));
      if (!from.ok()) return from.status();
      auto to = ParseU64(Single(c, "to", ""));
      if (!to.ok()) return to.status();
      node(*from).raw->TransferLeader(*to);
      return absl::OkStatus();
    }

    // Everything else names a node first.
    if (auto st = need(1); !st.ok()) return st;
    auto id_or = NodeArg(pos[0]);
    if (!id_or.ok()) return id_or.status();
    NodeId id = *id_or;
    Node& n = node(id);
    if (c.name == "campaign") return n.raw->Campaign();
    if (c.name == "propose") {
      if (auto st = need(2); !st.ok()) return st;
      return n.raw->Propose(pos[1]);
    }
    if (c.name == "process-ready") {
      for (const auto& p : pos) {
        auto pid = NodeArg(p);
        if (!pid.ok()) return pid.status();
        if (auto st = ProcessReady(*pid); !st.ok()) return st;
      }
      return absl::OkStatus();
    }
    if (c.name == "tick-election") return TickElection(id);
    if (c.name == "tick-heartbeat") return Tick(id, n.cfg.heartbeat_ticks);
    if (c.name == "tick") {
      auto k = ParseU64(Single(c, "n", "1"));
      if (!k.ok()) return k.status();
      return Tick(id, static_cast<int>(*k));
    }
    if (c.name == "status") {
      PrintStatus(id);
      return absl::OkStatus();
    }
    if (c.name == "raft-log") {
      PrintRaftLog(id);
      return absl::OkStatus();
    }
    if (c.name == "compact") {
      if (auto st = need(2); !st.ok()) return st;
      auto index = ParseU64(pos[1]);
      if (!index.ok()) return index.status();
      return Compact(id, *index);
    }
    if (c.name == "read-index") {
      if (auto st = need(2); !st.ok()) return st;
      return n.raw->ReadIndex(pos[1]);
    }
    if (c.name == "report-unreachable") {
      if (auto st = need(2); !st.ok()) return st;
      auto target = NodeArg(pos[1]);
      if (!target.ok()) return target.status();
      n.raw->ReportUnreachable(*target);
      return absl::OkStatus();
    }
    if (c.name == "cut") {
      if (auto st = need(2); !st.ok()) return st;
      auto other = NodeArg(pos[1]);
      if (!other.ok()) return other.status();
      cuts_.insert({std::min(id, *other), std::max(id, *other)});
      return absl::OkStatus();
    }
    if (c.name == "isolate") {
      for (NodeId other = 1; other <= nodes_.size(); other++) {
        if (other != id) cuts_.insert({std::min(id, other), std::max(id, other)});
      }
      return absl::OkStatus();
    }
    if (c.name == "restart") return Restart(id);
    return Bad("unknown command " + c.name);
  }();
  if (!s.ok()) {
    // Errors are printed even when silent.
    out_.push_back(absl::StrCat(std::string(indent_, ' '), "error: ", s.message()));
  }
  if (out_.empty()) return "ok";
  return absl::StrJoin(out_, "\n");
}

absl::Status InteractionEnv::AddNodes(const Command& c) {
  if (c.positional.empty()) return Bad("add-nodes needs a count");
  auto count = ParseU64(c.positional[0]);
  if (!count.ok()) return count.status();
  ConfState cs;
  if (auto it = c.options.find("voters"); it != c.options.end()) {
    for (const auto& v : it->second) {
      auto id = ParseU64(v);
      if (!id.ok()) return id.status();
      cs.voters.push_back(*id);
    }
  }
  if (auto it = c.options.find("learners"); it != c.options.end()) {
    for (const auto& v : it->second) {
      auto id = ParseU64(v);
      if (!id.ok()) return id.status();
      cs.learners.push_back(*id);
    }
  }
  auto index = ParseU64(Single(c, "index", "0"));
  if (!index.ok()) return index.status();
  auto prevote = ParseBool(Single(c, "prevote", "true"));
  if (!prevote.ok()) return prevote.status();
  auto checkquorum = ParseBool(Single(c, "checkquorum", "true"));
  if (!checkquorum.ok()) return checkquorum.status();
  auto forwarding = ParseBool(Single(c, "disable-forwarding", "false"));
  if (!forwarding.ok()) return forwarding.status();
  auto uncommitted = ParseU64(Single(c, "max-uncommitted-size", "0"));
  if (!uncommitted.ok()) return uncommitted.status();
  std::string read_only = Single(c, "read-only", "safe");
  if (read_only != "safe" && read_only != "lease") return Bad("read-only is safe or lease");

  for (uint64_t i = 0; i < *count; i++) {
    Node n;
    NodeId id = nodes_.size() + 1;
    n.storage = std::make_unique<MemoryStorage>();
    if (*index > 0) {
      // Start from a snapshot at `index` (term 1) instead of an empty log.
      Snapshot snap;
      snap.metadata = {cs, *index, 1};
      snap.data = Single(c, "content", "");
      if (auto s = n.storage->ApplySnapshot(snap); !s.ok()) return s;
      n.storage->SetHardState(HardState{1, kNoNode, *index});
      n.applied_index = *index;
      if (!snap.data.empty()) n.applied.emplace_back(*index, snap.data);
    } else {
      n.storage->SetConfState(cs);
    }
    n.cfg.id = id;
    n.cfg.storage = n.storage.get();
    n.cfg.applied = n.applied_index;
    n.cfg.pre_vote = *prevote;
    n.cfg.check_quorum = *checkquorum;
    n.cfg.disable_proposal_forwarding = *forwarding;
    n.cfg.max_uncommitted_bytes = *uncommitted;
    n.cfg.read_only_option =
        read_only == "lease" ? ReadOnlyOption::kLeaseBased : ReadOnlyOption::kSafe;
    n.cfg.event_sink = [this](const std::string& line) {
      if (show_events_) Print(line);
    };
    n.raw = NewRawNode(n);
    nodes_.push_back(std::move(n));
  }
  return absl::OkStatus();
}

absl::Status InteractionEnv::ProcessReady(NodeId id) {
  Node& n = node(id);
  Print(absl::StrCat("> ", id, " handling Ready"));
  indent_ += 2;
  if (!n.raw->HasReady()) {
    Print("<empty Ready>");
    indent_ -= 2;
    return absl::OkStatus();
  }
  Ready rd = n.raw->GetReady();
  Print(absl::StrCat("Ready MustSync=", rd.must_sync ? "true" : "false", ":"));
  if (rd.soft_state) {
    Print(absl::StrCat("Lead:", rd.soft_state->lead, " State:", StateName(rd.soft_state->state)));
  }
  if (rd.hard_state) Print("HardState " + Describe(*rd.hard_state));
  if (!rd.entries.empty()) {
    Print("Entries:");
    for (const Entry& e : rd.entries) Print(Describe(e));
  }
  if (rd.snapshot) Print("Snapshot " + DescribeSnapshot(*rd.snapshot));
  if (!rd.committed_entries.empty()) {
    Print("CommittedEntries:");
    for (const Entry& e : rd.committed_entries) Print(Describe(e));
  }
  if (!rd.messages.empty()) {
    Print("Messages:");
    for (const Message& m : rd.messages) Print(Describe(m));
  }
  if (!rd.read_states.empty()) {
    Print("ReadStates:");
    for (const ReadState& r : rd.read_states) {
      Print(absl::StrCat("Index:", r.index, " Context:", r.request_ctx));
    }
  }

  // Persist: snapshot, then entries, then the hard state that covers them.
  if (auto s = n.storage->Save(rd.hard_state, rd.entries, rd.snapshot); !s.ok()) return s;

  // Send: the harness holds them until delivered.
  for (Message& m : rd.messages) network_.push_back(std::move(m));

  // Apply: the snapshot's state first, then committed entries in order.
  if (rd.snapshot) {
    n.applied.clear();
    for (absl::string_view item : absl::StrSplit(rd.snapshot->data, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits(':', 1));
      auto index = ParseU64(kv.first);
      if (!index.ok()) return index.status();
      n.applied.emplace_back(*index, kv.second);
    }
    n.applied_index = rd.snapshot->metadata.index;
  }
  for (const Entry& e : rd.committed_entries) {
    if (e.type == EntryType::kConfChange) {
      auto cc = DecodeConfChange(e.data);
      if (!cc.ok()) return cc.status();
      // The configuration takes effect when the entry is applied.
      auto cs = n.raw->ApplyConfChange(*cc);
      if (!cs.ok())
        Print(absl::StrCat("conf change ", e.index, " refused: ", cs.status().message()));
    } else if (!e.data.empty()) {
      n.applied.emplace_back(e.index, e.data);
    }
    n.applied_index = e.index;
  }
  n.raw->Advance(rd);
  indent_ -= 2;
  return absl::OkStatus();
}

bool InteractionEnv::DeliverTo(NodeId id, const std::set<NodeId>& drop) {
  std::vector<Message> mine;
  std::vector<Message> rest;
  for (Message& m : network_) (m.to == id ? mine : rest).push_back(std::move(m));
  network_ = std::move(rest);
  if (mine.empty()) return false;
  Print(absl::StrCat("> ", id, " receiving messages"));
  indent_ += 2;
  for (Message& m : mine) {
    if (drop.count(id)) {
      Print("dropped: " + Describe(m));
      continue;
    }
    if (IsCut(m.from, m.to)) {
      Print("dropped (partition): " + Describe(m));
      continue;
    }
    Print(Describe(m));
    if (auto s = node(id).raw->Step(m); !s.ok()) Print(absl::StrCat("error: ", s.message()));
  }
  indent_ -= 2;
  return true;
}

absl::Status InteractionEnv::Stabilize(const std::vector<NodeId>& ids) {
  for (int round = 0; round < kStabilizeRoundsMax; round++) {
    bool any = false;
    for (NodeId id : ids) {
      if (!node(id).raw->HasReady()) continue;
      any = true;
      if (auto s = ProcessReady(id); !s.ok()) return s;
    }
    for (NodeId id : ids) any |= DeliverTo(id, {});
    if (!any) return absl::OkStatus();
  }
  return absl::InternalError("stabilize did not converge");
}

absl::Status InteractionEnv::Tick(NodeId id, int ticks) {
  for (int i = 0; i < ticks; i++) node(id).raw->Tick();
  return absl::OkStatus();
}

absl::Status InteractionEnv::TickElection(NodeId id) {
  Node& n = node(id);
  const Raft& r = n.raw->raft();
  if (r.state() == StateType::kLeader) {
    // A leader counts election_ticks for CheckQuorum and transfer timeouts.
    return Tick(id, n.cfg.election_ticks);
  }
  // Tick until the (randomized) election timeout fires, and no further, so a
  // scenario does not depend on the random draw. A node that cannot campaign
  // (learner, in a lease) just sees two full timeouts pass.
  SoftState before = r.GetSoftState();
  Term term = r.term();
  bool had_output = r.HasPendingOutput();
  for (int i = 0; i < 2 * n.cfg.election_ticks; i++) {
    n.raw->Tick();
    if (r.GetSoftState() != before || r.term() != term || (!had_output && r.HasPendingOutput())) {
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status InteractionEnv::ProposeConfChange(const Command& c) {
  if (c.positional.empty()) return Bad("propose-conf-change needs a node");
  auto id = NodeArg(c.positional[0]);
  if (!id.ok()) return id.status();
  ConfChange cc;
  std::string transition = Single(c, "transition", "auto");
  if (transition == "auto") {
    cc.transition = ConfChange::Transition::kAuto;
  } else if (transition == "implicit") {
    cc.transition = ConfChange::Transition::kJointImplicit;
  } else if (transition == "explicit") {
    cc.transition = ConfChange::Transition::kJointExplicit;
  } else {
    return Bad("transition is auto, implicit or explicit");
  }
  for (size_t i = 1; i < c.positional.size(); i++) {
    const std::string& t = c.positional[i];
    if (t.size() < 2) return Bad("bad change " + t);
    ConfChangeSingle ch;
    switch (t[0]) {
      case 'v':
        ch.type = ConfChangeSingle::Type::kAddNode;
        break;
      case 'l':
        ch.type = ConfChangeSingle::Type::kAddLearnerNode;
        break;
      case 'r':
        ch.type = ConfChangeSingle::Type::kRemoveNode;
        break;
      default:
        return Bad("bad change " + t);
    }
    auto nid = ParseU64(t.substr(1));
    if (!nid.ok()) return nid.status();
    ch.node_id = *nid;
    cc.changes.push_back(ch);
  }
  return node(*id).raw->ProposeConfChange(cc);
}

absl::Status InteractionEnv::Compact(NodeId id, Index index) {
  Node& n = node(id);
  if (index > n.applied_index) {
    return Bad(absl::StrCat("cannot snapshot at ", index, ": applied is ", n.applied_index));
  }
  // The configuration as of `index`: the scenario compacts at the applied
  // index, where it is the node's current one.
  ConfState cs = n.raw->raft().tracker().GetConfState();
  auto snap = n.storage->CreateSnapshot(index, cs, EncodeApplied(n, index));
  if (!snap.ok()) return snap.status();
  if (auto s = n.storage->Compact(index); !s.ok()) return s;
  PrintRaftLog(id);
  return absl::OkStatus();
}

absl::Status InteractionEnv::Restart(NodeId id) {
  Node& n = node(id);
  // The application state is in memory and lost: it is rebuilt from the
  // snapshot, and the entries after it are applied again.
  auto snap = n.storage->GetSnapshot();
  if (!snap.ok()) return snap.status();
  n.applied.clear();
  for (absl::string_view item : absl::StrSplit(snap->data, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits(':', 1));
    auto index = ParseU64(kv.first);
    if (!index.ok()) return index.status();
    n.applied.emplace_back(*index, kv.second);
  }
  n.applied_index = snap->metadata.index;
  n.cfg.applied = n.applied_index;
  n.raw.reset();
  n.raw = NewRawNode(n);
  return absl::OkStatus();
}

void InteractionEnv::PrintStatus(NodeId id) {
  Status st = node(id).raw->GetStatus();
  Print(absl::StrCat(id, ": ", StateName(st.soft_state.state), " Lead:", st.soft_state.lead, " ",
                     Describe(st.hard_state), " Applied:", st.applied,
                     st.lead_transferee ? absl::StrCat(" Transferee:", st.lead_transferee) : ""));
  Print("config: " + st.config.Describe());
  for (const auto& [pid, pr] : st.progress) Print(absl::StrCat("  ", pid, ": ", pr));
}

void InteractionEnv::PrintRaftState() {
  for (NodeId id = 1; id <= nodes_.size(); id++) {
    const Raft& r = node(id).raw->raft();
    const auto& cfg = r.tracker().config;
    const char* role = cfg.voters.Contains(id)  ? "Voter"
                       : cfg.learners.count(id) ? "Learner"
                                                : "Non-member";
    Print(absl::StrCat(id, ": ", StateName(r.state()), " (", role, ") Term:", r.term(),
                       " Lead:", r.lead()));
  }
}

void InteractionEnv::PrintRaftLog(NodeId id) {
  Node& n = node(id);
  Index first = n.storage->FirstIndex();
  Index last = n.storage->LastIndex();
  if (first > 1) {
    auto snap = n.storage->GetSnapshot();
    if (snap.ok()) Print("snapshot " + DescribeSnapshot(*snap));
  }
  if (first > last) {
    Print(absl::StrCat("log is empty: first index=", first, ", last index=", last));
  } else {
    auto ents = n.storage->Entries(first, last + 1, kNoLimit);
    if (!ents.ok()) {
      Print(absl::StrCat("error: ", ents.status().message()));
    } else {
      for (const Entry& e : *ents) Print(Describe(e));
    }
  }
  Print(absl::StrCat("applied: [", EncodeApplied(n, n.applied_index), "]"));
}

}  // namespace ganglion::raft::testing
