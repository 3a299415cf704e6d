#include "raft/testing/test_cluster.h"

#include <algorithm>

namespace ganglion::raft::testing {

namespace {
void Persist(MemoryStorage& s, const Ready& rd) {
  if (auto st = s.Save(rd.hard_state, rd.entries, rd.snapshot); !st.ok()) Fatal(st.ToString());
}
}  // namespace

TestCluster::TestCluster(std::vector<NodeId> voters, std::vector<NodeId> learners, Tweak tweak)
    : tweak_(std::move(tweak)) {
  ConfState cs;
  cs.voters = voters;
  cs.learners = learners;
  std::vector<NodeId> all = voters;
  all.insert(all.end(), learners.begin(), learners.end());
  for (NodeId id : all) {
    TestMember m;
    m.storage = std::make_unique<MemoryStorage>();
    m.storage->SetConfState(cs);
    m.conf_state = cs;
    members_.emplace(id, std::move(m));
    Restart(id);
  }
}

void TestCluster::AddEmptyMember(NodeId id) {
  TestMember m;
  m.storage = std::make_unique<MemoryStorage>();
  members_.emplace(id, std::move(m));
  Restart(id);
}

Config TestCluster::MakeConfig(NodeId id, Index applied) const {
  Config c;
  c.id = id;
  c.storage = members_.at(id).storage.get();
  c.applied = applied;
  c.random_seed = 42;
  if (tweak_) tweak_(c);
  return c;
}

void TestCluster::Restart(NodeId id) {
  TestMember& m = members_.at(id);
  // The application state survives only as far as the snapshot: the core
  // hands the committed entries after it to us again.
  Index applied = m.storage->FirstIndex() - 1;
  m.applied.erase(std::remove_if(m.applied.begin(), m.applied.end(),
                                 [&](const Entry& e) { return e.index > applied; }),
                  m.applied.end());
  auto node = RawNode::Create(MakeConfig(id, applied));
  if (!node.ok()) Fatal(node.status().ToString());
  m.node = *std::move(node);
}

std::vector<NodeId> TestCluster::ids() const {
  std::vector<NodeId> out;
  for (const auto& [id, m] : members_) out.push_back(id);
  return out;
}

void TestCluster::Tick(NodeId id, int ticks) {
  for (int i = 0; i < ticks; i++) node(id).Tick();
}

void TestCluster::TickElection(NodeId id) {
  int timeout = raft(id).randomized_election_timeout();
  for (int i = 0; i < timeout; i++) node(id).Tick();
}

void TestCluster::ProcessReady(NodeId id) {
  TestMember& m = members_.at(id);
  while (m.node->HasReady()) {
    Ready rd = m.node->GetReady();
    Persist(*m.storage, rd);
    for (Message& msg : rd.messages) outbox_.push_back(std::move(msg));
    if (rd.snapshot) {
      m.applied.clear();  // the snapshot replaces the state
      m.conf_state = rd.snapshot->metadata.conf_state;
    }
    for (const Entry& e : rd.committed_entries) {
      if (e.type == EntryType::kConfChange) {
        auto cc = DecodeConfChange(e.data);
        if (!cc.ok()) Fatal(cc.status().ToString());
        auto cs = m.node->ApplyConfChange(*cc);
        if (cs.ok()) m.conf_state = *cs;
      } else if (!e.data.empty()) {
        m.applied.push_back(e);
      }
    }
    m.read_states.insert(m.read_states.end(), rd.read_states.begin(), rd.read_states.end());
    m.node->Advance(rd);
  }
}

bool TestCluster::Linked(NodeId a, NodeId b) const {
  return !cut_.count({a, b}) && !cut_.count({b, a});
}

void TestCluster::Deliver(const Message& m) {
  auto it = members_.find(m.to);
  if (it == members_.end() || !Linked(m.from, m.to) || (filter_ && !filter_(m))) {
    dropped_++;
    return;
  }
  (void)it->second.node->Step(m);
}

std::vector<Message> TestCluster::TakeMessages() {
  for (const auto& [id, m] : members_) ProcessReady(id);
  std::vector<Message> out;
  out.swap(outbox_);
  return out;
}

void TestCluster::Stabilize(size_t rounds_max) {
  for (size_t round = 0; round < rounds_max; round++) {
    std::vector<Message> msgs = TakeMessages();
    if (msgs.empty()) return;
    for (const Message& m : msgs) Deliver(m);
  }
  Fatal("cluster did not stabilize");
}

void TestCluster::Cut(NodeId a, NodeId b) {
  cut_.insert({a, b});
}

void TestCluster::Isolate(NodeId id) {
  for (const auto& [other, m] : members_) {
    if (other != id) Cut(id, other);
  }
}

void TestCluster::CompactTo(NodeId id, Index index) {
  TestMember& m = members_.at(id);
  auto snap = m.storage->CreateSnapshot(index, m.conf_state, "snapshot");
  if (!snap.ok()) Fatal(snap.status().ToString());
  if (auto s = m.storage->Compact(index); !s.ok()) Fatal(s.ToString());
}

NodeId TestCluster::Leader() const {
  NodeId leader = kNoNode;
  Term term = 0;
  for (const auto& [id, m] : members_) {
    const Raft& r = m.node->raft();
    if (r.state() == StateType::kLeader && r.term() >= term) {
      leader = id;
      term = r.term();
    }
  }
  return leader;
}

Solo::Solo(NodeId id, std::vector<NodeId> voters, TestCluster::Tweak tweak) {
  ConfState cs;
  cs.voters = std::move(voters);
  storage.SetConfState(cs);
  Config c;
  c.id = id;
  c.storage = &storage;
  c.random_seed = 7;
  if (tweak) tweak(c);
  auto n = RawNode::Create(c);
  if (!n.ok()) Fatal(n.status().ToString());
  node = *std::move(n);
}

std::vector<Message> Solo::Drain() {
  std::vector<Message> out;
  while (node->HasReady()) {
    Ready rd = node->GetReady();
    Persist(storage, rd);
    out.insert(out.end(), rd.messages.begin(), rd.messages.end());
    node->Advance(rd);
  }
  return out;
}

}  // namespace ganglion::raft::testing
