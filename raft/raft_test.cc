// Tests of the Raft core, named after the sections of the Raft paper (Ongaro
// and Ousterhout, "In Search of an Understandable Consensus Algorithm") and
// the thesis chapters they cover.
#include "raft/raft.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "raft/testing/test_cluster.h"

namespace ganglion::raft {
namespace {

using testing::Solo;
using testing::TestCluster;

Message Msg(MessageType t, NodeId from, NodeId to, Term term) {
  Message m;
  m.type = t;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

std::vector<Message> OfType(const std::vector<Message>& msgs, MessageType t) {
  std::vector<Message> out;
  for (const auto& m : msgs) {
    if (m.type == t) out.push_back(m);
  }
  return out;
}

TestCluster::Tweak NoPreVote() {
  return [](Config& c) { c.pre_vote = false; };
}

// Ticks the members of a group (the rest are cut off from them) until one of
// them leads; followers must first see their leader lease expire.
NodeId ElectWithin(TestCluster& c, const std::vector<NodeId>& group) {
  for (int i = 0; i < 200; i++) {
    for (NodeId id : group) c.Tick(id);
    c.Stabilize();
    NodeId l = c.Leader();
    if (std::find(group.begin(), group.end(), l) != group.end()) return l;
  }
  return kNoNode;
}

// --- 5.2 Leader election ---------------------------------------------------

TEST(Section5_2_LeaderElection, StartsAsFollower) {
  TestCluster c({1, 2, 3});
  for (NodeId id : c.ids()) EXPECT_EQ(c.raft(id).state(), StateType::kFollower);
}

TEST(Section5_2_LeaderElection, CandidateWithMajorityBecomesLeader) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 1u);
  EXPECT_EQ(c.raft(1).term(), 1u);
  for (NodeId id : {2, 3}) {
    EXPECT_EQ(c.raft(id).state(), StateType::kFollower);
    EXPECT_EQ(c.raft(id).lead(), 1u);
  }
  // The leader's empty entry of its term is committed everywhere.
  for (NodeId id : c.ids()) EXPECT_EQ(c.raft(id).log().committed(), 1u);
}

TEST(Section5_2_LeaderElection, ElectionTimeoutIsRandomizedInRange) {
  std::set<int> seen;
  for (uint64_t seed = 0; seed < 200; seed++) {
    MemoryStorage s;
    s.SetConfState(ConfState{{1, 2, 3}, {}, {}, {}, false});
    Config cfg;
    cfg.id = 1;
    cfg.storage = &s;
    cfg.random_seed = seed;
    Raft r(cfg);
    int t = r.randomized_election_timeout();
    EXPECT_GE(t, cfg.election_ticks);
    EXPECT_LT(t, 2 * cfg.election_ticks);
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 5u) << "timeouts must actually vary";
}

TEST(Section5_2_LeaderElection, FollowerVotesAtMostOncePerTerm) {
  Solo s(1, {1, 2, 3}, NoPreVote());
  Message v2 = Msg(MessageType::kVote, 2, 1, 1);
  ASSERT_TRUE(s.node->Step(v2).ok());
  Message v3 = Msg(MessageType::kVote, 3, 1, 1);
  ASSERT_TRUE(s.node->Step(v3).ok());
  auto resps = OfType(s.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resps.size(), 2u);
  EXPECT_FALSE(resps[0].reject) << "first candidate gets the vote";
  EXPECT_TRUE(resps[1].reject) << "second candidate in the same term is refused";
  EXPECT_EQ(s.storage.hard_state().vote, 2u) << "the vote is persisted";
  // The same candidate asking again (a duplicate) is granted again.
  ASSERT_TRUE(s.node->Step(v2).ok());
  resps = OfType(s.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_FALSE(resps[0].reject);
}

TEST(Section5_2_LeaderElection, CandidateFallsBackOnLeaderOfSameTerm) {
  Solo s(1, {1, 2, 3}, NoPreVote());
  ASSERT_TRUE(s.node->Campaign().ok());
  s.Drain();
  ASSERT_EQ(s.node->raft().state(), StateType::kCandidate);
  Message app = Msg(MessageType::kApp, 2, 1, 1);
  ASSERT_TRUE(s.node->Step(app).ok());
  EXPECT_EQ(s.node->raft().state(), StateType::kFollower);
  EXPECT_EQ(s.node->raft().lead(), 2u);
}

TEST(Section5_2_LeaderElection, SplitVoteLeadsToNewElection) {
  TestCluster c({1, 2, 3}, {}, NoPreVote());
  // 1 and 2 campaign at once; 3 hears 1 first. Nobody else votes twice, so
  // with the link 1-2 cut neither can reach... 1 wins with 3's vote.
  c.Cut(1, 2);
  c.TickElection(1);
  c.TickElection(2);
  c.Stabilize();
  NodeId leader = c.Leader();
  ASSERT_NE(leader, kNoNode);
  c.Heal();
  // Cut 3 off: neither 1 nor 2 can form a new majority alone, but together they can.
  c.Isolate(3);
  for (int i = 0; i < 50 && c.Leader() == leader; i++) {
    for (NodeId id : {1, 2}) c.Tick(id);
    c.Stabilize();
  }
  EXPECT_NE(c.Leader(), kNoNode);
}

TEST(Section5_1_Basics, FollowerUpdatesTermFromMessage) {
  Solo s(1, {1, 2, 3});
  Message app = Msg(MessageType::kApp, 2, 1, 5);
  ASSERT_TRUE(s.node->Step(app).ok());
  EXPECT_EQ(s.node->raft().term(), 5u);
  EXPECT_EQ(s.node->raft().lead(), 2u);
}

TEST(Section5_1_Basics, StaleTermMessageIsRejectedWithCurrentTerm) {
  Solo s(1, {1, 2, 3});
  ASSERT_TRUE(s.node->Step(Msg(MessageType::kApp, 2, 1, 5)).ok());
  s.Drain();
  ASSERT_TRUE(s.node->Step(Msg(MessageType::kApp, 3, 1, 3)).ok());
  auto msgs = s.Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, 3u);
  EXPECT_EQ(msgs[0].type, MessageType::kAppResp);
  EXPECT_EQ(msgs[0].term, 5u) << "the stale leader learns the newer term";
  EXPECT_EQ(s.node->raft().lead(), 2u);
}

// --- 5.3 Log replication -----------------------------------------------------

TEST(Section5_3_LogReplication, LeaderReplicatesAndCommits) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).Propose("a").ok());
  ASSERT_TRUE(c.node(1).Propose("b").ok());
  c.Stabilize();
  for (NodeId id : c.ids()) {
    ASSERT_EQ(c.member(id).applied.size(), 2u) << "node " << id;
    EXPECT_EQ(c.member(id).applied[0].data, "a");
    EXPECT_EQ(c.member(id).applied[1].data, "b");
    EXPECT_EQ(c.raft(id).log().committed(), 3u);
  }
}

TEST(Section5_3_LogReplication, FollowerForwardsProposalToLeader) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(3).Propose("via-follower").ok());
  c.Stabilize();
  ASSERT_EQ(c.member(1).applied.size(), 1u);
  EXPECT_EQ(c.member(1).applied[0].data, "via-follower");
}

TEST(Section5_3_LogReplication, ProposalWithoutLeaderIsDropped) {
  TestCluster c({1, 2, 3});
  EXPECT_TRUE(IsErrProposalDropped(c.node(2).Propose("x")));
}

TEST(Section5_3_LogReplication, LeaderNeedsOwnDurableCopyOrMajority) {
  TestCluster c({1});
  c.TickElection(1);
  c.ProcessReady(1);
  ASSERT_EQ(c.Leader(), 1u);
  ASSERT_TRUE(c.node(1).Propose("x").ok());
  // The entry is not committed before the Ready holding it was persisted.
  Ready rd = c.node(1).GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.committed_entries.empty());
  EXPECT_EQ(c.raft(1).log().committed(), 1u);
  c.storage(1).Append(rd.entries).IgnoreError();
  c.node(1).Advance(rd);
  EXPECT_EQ(c.raft(1).log().committed(), 2u);
  rd = c.node(1).GetReady();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].data, "x");
}

// Figure 7 style: followers with missing, extra and conflicting entries are
// all repaired to the leader's log.
TEST(Section5_3_LogReplication, LeaderRepairsDivergentFollowers) {
  TestCluster c({1, 2, 3, 4, 5});
  c.TickElection(1);
  c.Stabilize();
  // 1 writes entries only 2 gets (term 1); then 1 is cut off and 3 becomes
  // leader, writing different entries at the same indexes.
  c.Isolate(3);
  c.Isolate(4);
  c.Isolate(5);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(c.node(1).Propose("old" + std::to_string(i)).ok());
  c.Stabilize();
  c.Heal();
  c.Isolate(1);
  c.Isolate(2);
  NodeId leader = ElectWithin(c, {3, 4, 5});
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 8; i++) ASSERT_TRUE(c.node(leader).Propose("new" + std::to_string(i)).ok());
  c.Stabilize();
  c.Heal();
  for (int i = 0; i < 3; i++) {
    c.Tick(leader, 1);
    c.Stabilize();
  }
  ASSERT_EQ(c.Leader(), leader);
  std::vector<Entry> want = c.raft(leader).log().AllEntries();
  for (NodeId id : c.ids()) {
    EXPECT_EQ(c.raft(id).log().AllEntries(), want) << "node " << id;
    for (const Entry& e : c.member(id).applied) {
      EXPECT_EQ(e.data.substr(0, 3), "new") << "no uncommitted old entry is ever applied";
    }
  }
}

// Fast backtracking: a follower with a long conflicting tail is repaired in a
// few round trips, not one per entry.
TEST(Section5_3_LogReplication, RejectionHintSkipsWholeTerm) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(2);
  c.Isolate(3);
  for (int i = 0; i < 100; i++) ASSERT_TRUE(c.node(1).Propose("stale").ok());
  c.Stabilize();  // 1 holds 100 uncommitted entries of term 1
  c.Heal();
  c.Isolate(1);
  NodeId leader = ElectWithin(c, {2, 3});
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 10; i++) ASSERT_TRUE(c.node(leader).Propose("fresh").ok());
  c.Stabilize();
  c.Heal();
  size_t rejections = 0;
  c.SetFilter([&](const Message& m) {
    if (m.type == MessageType::kAppResp && m.reject && m.from == 1) rejections++;
    return true;
  });
  c.Tick(leader, 1);
  c.Stabilize();
  EXPECT_EQ(c.raft(1).log().AllEntries(), c.raft(leader).log().AllEntries());
  EXPECT_LE(rejections, 3u) << "backtracking must skip by term, not entry by entry";
}

TEST(Section5_3_LogReplication, FollowerRejectsAppendWithMismatchedPrevEntry) {
  Solo s(1, {1, 2, 3});
  Message app = Msg(MessageType::kApp, 2, 1, 2);
  app.index = 5;
  app.log_term = 2;
  app.entries.push_back(Entry{2, 6, EntryType::kNormal, "x"});
  ASSERT_TRUE(s.node->Step(app).ok());
  auto resps = OfType(s.Drain(), MessageType::kAppResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_TRUE(resps[0].reject);
  EXPECT_EQ(resps[0].index, 5u);
  EXPECT_EQ(resps[0].reject_hint, 0u) << "our log is empty: probe from the start";
}

// Once an entry commits, the leader tells each follower the new commit index.
// To a follower it already knows holds everything, that append carries no
// entries and is marked commit-only; the follower's answer could only repeat
// its match, so it sends none. A follower the leader has not heard from gets
// an ordinary append and answers it.
TEST(Section5_3_LogReplication, CommitOnlyAppendGoesToMatchedFollowersAndIsNotAnswered) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  // 3 hears the leader but cannot answer: its match stays behind.
  std::vector<Message> seen;
  c.SetFilter([&](const Message& m) {
    seen.push_back(m);
    return !(m.from == 3 && m.type == MessageType::kAppResp);
  });
  ASSERT_TRUE(c.node(1).Propose("a").ok());
  c.Stabilize();
  const Index committed = c.raft(1).log().committed();
  ASSERT_EQ(c.raft(2).log().committed(), committed);
  ASSERT_EQ(c.raft(3).log().committed(), committed) << "a commit-only append still commits";

  int commit_only_to_2 = 0, plain_commit_to_3 = 0, acks_from_2 = 0;
  for (const Message& m : seen) {
    if (m.type == MessageType::kApp && m.from == 1 && m.entries.empty() && m.commit == committed) {
      if (m.to == 2 && m.commit_only) commit_only_to_2++;
      if (m.to == 3 && !m.commit_only) plain_commit_to_3++;
    }
    if (m.type == MessageType::kApp) {
      EXPECT_TRUE(!m.commit_only || m.entries.empty()) << Describe(m);
    }
    if (m.type == MessageType::kAppResp && m.from == 2) acks_from_2++;
  }
  EXPECT_EQ(commit_only_to_2, 1);
  EXPECT_EQ(plain_commit_to_3, 1);
  EXPECT_EQ(acks_from_2, 1) << "2 acknowledges the entry, not the commit that follows";
}

// A commit-only append the follower cannot match (it lost nothing a leader
// knows of, so this takes a leader with a wrong view) is still rejected with
// a hint: the leader must hear of it.
TEST(Section5_3_LogReplication, FollowerRejectsCommitOnlyAppendItCannotMatch) {
  Solo s(1, {1, 2, 3});
  Message app = Msg(MessageType::kApp, 2, 1, 2);
  app.index = 5;
  app.log_term = 2;
  app.commit = 5;
  app.commit_only = true;
  ASSERT_TRUE(s.node->Step(app).ok());
  auto resps = OfType(s.Drain(), MessageType::kAppResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_TRUE(resps[0].reject);
  EXPECT_EQ(resps[0].index, 5u);
}

// --- 5.4 Safety --------------------------------------------------------------

// CheckQuorum is off here: its leader lease would ignore these candidates
// before the log comparison this test is about.
TestCluster::Tweak PlainVoting() {
  return [](Config& c) {
    c.pre_vote = false;
    c.check_quorum = false;
  };
}

TEST(Section5_4_1_ElectionRestriction, VoterRejectsCandidateWithOlderLog) {
  Solo s(1, {1, 2, 3}, PlainVoting());
  Message app = Msg(MessageType::kApp, 2, 1, 2);
  app.entries = {Entry{2, 1, EntryType::kNormal, "x"}};
  ASSERT_TRUE(s.node->Step(app).ok());
  s.Drain();
  // Candidate 3 at a higher term but with an empty log.
  Message vote = Msg(MessageType::kVote, 3, 1, 3);
  vote.index = 0;
  vote.log_term = 0;
  ASSERT_TRUE(s.node->Step(vote).ok());
  auto resps = OfType(s.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_TRUE(resps[0].reject);
  // Same last term with a shorter log is also older.
  Message vote2 = Msg(MessageType::kVote, 3, 1, 4);
  vote2.index = 0;
  vote2.log_term = 2;
  ASSERT_TRUE(s.node->Step(vote2).ok());
  resps = OfType(s.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_TRUE(resps[0].reject);
  // A longer log at the same term is up to date.
  Message vote3 = Msg(MessageType::kVote, 3, 1, 5);
  vote3.index = 2;
  vote3.log_term = 2;
  ASSERT_TRUE(s.node->Step(vote3).ok());
  resps = OfType(s.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_FALSE(resps[0].reject);
}

TEST(Section5_4_1_ElectionRestriction, TheBugSwitchGrantsStaleVotes) {
  Solo s(1, {1, 2, 3}, [](Config& c) {
    PlainVoting()(c);
    c.bugs.vote_without_log_check = true;
  });
  Message app = Msg(MessageType::kApp, 2, 1, 2);
  app.entries = {Entry{2, 1, EntryType::kNormal, "x"}};
  ASSERT_TRUE(s.node->Step(app).ok());
  s.Drain();
  ASSERT_TRUE(s.node->Step(Msg(MessageType::kVote, 3, 1, 3)).ok());
  auto resps = OfType(s.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_FALSE(resps[0].reject) << "the injected bug must really change behaviour";
}

// Figure 8: a leader must not commit an entry of an earlier term by counting
// replicas; it commits it only together with an entry of its own term.
// Returns the commit index the new leader reached while only the old-term
// entry had a majority.
Index CommitWithOnlyOldTermMajority(bool inject_bug) {
  TestCluster c({1, 2, 3, 4, 5}, {}, [&](Config& cfg) {
    PlainVoting()(cfg);
    cfg.max_msg_bytes = 1;  // one entry per append, so appends can be told apart
    cfg.bugs.commit_old_term_by_counting = inject_bug;
  });
  c.TickElection(1);
  c.Stabilize();
  // Term 1: X at index 2 reaches only 1 and 2.
  for (NodeId id : {3, 4, 5}) c.Isolate(id);
  if (!c.node(1).Propose("X").ok()) Fatal("propose");
  c.Stabilize();
  c.Heal();
  // 1 crashes and comes back; with the votes of 3 and 4 it leads term 2.
  c.Restart(1);
  c.Isolate(2);
  c.Isolate(5);
  c.SetFilter([](const Message& m) { return m.type != MessageType::kApp; });
  c.TickElection(1);
  c.Stabilize();
  if (c.Leader() != 1 || c.raft(1).term() != 2) Fatal("setup: 1 must lead term 2");
  // X (term 1) is replicated to 3 and 4; the term-2 entry is withheld.
  c.SetFilter({});
  for (int round = 0; round < 50; round++) {
    c.Tick(1);  // heartbeats, so the dropped appends are retried
    std::vector<Message> msgs = c.TakeMessages();
    for (Message& m : msgs) {
      if (m.type == MessageType::kApp) {
        std::erase_if(m.entries, [](const Entry& e) { return e.term == 2; });
      }
      c.Deliver(m);
    }
  }
  if (c.raft(3).log().TermOrZero(2) != 1 || c.raft(4).log().TermOrZero(2) != 1) {
    Fatal("setup: X must be on a majority");
  }
  return c.raft(1).log().committed();
}

TEST(Section5_4_2_CommittingEarlierTerms, OldTermEntryNotCommittedByCount) {
  EXPECT_LT(CommitWithOnlyOldTermMajority(false), 2u)
      << "an entry of an earlier term is never committed by counting replicas";
  EXPECT_GE(CommitWithOnlyOldTermMajority(true), 2u)
      << "the injected bug must really commit it (so this test can fail)";
}

TEST(Section5_4_2_CommittingEarlierTerms, OldTermEntryCommitsWithCurrentTermEntry) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(2);
  c.Isolate(3);
  ASSERT_TRUE(c.node(1).Propose("X").ok());
  c.Stabilize();
  c.Heal();
  c.Restart(1);
  NodeId leader = ElectWithin(c, {1, 2, 3});
  ASSERT_NE(leader, kNoNode);
  c.Stabilize();
  if (leader == 1) {
    EXPECT_EQ(c.member(2).applied.size(), 1u) << "X commits along with the new term's entry";
  }
  EXPECT_GE(c.raft(leader).log().committed(), 3u);
}

// --- 6 Cluster membership changes --------------------------------------------

ConfChange Change(std::vector<ConfChangeSingle> cs,
                  ConfChange::Transition t = ConfChange::Transition::kAuto) {
  ConfChange cc;
  cc.changes = std::move(cs);
  cc.transition = t;
  return cc;
}
using T = ConfChangeSingle::Type;

TEST(Section6_Membership, SingleVoterAddTakesEffectWhenApplied) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.AddEmptyMember(4);
  ASSERT_TRUE(c.node(1).ProposeConfChange(Change({{T::kAddNode, 4}})).ok());
  // Appended but not applied: the configuration is unchanged.
  EXPECT_FALSE(c.raft(1).tracker().config.voters.Contains(4));
  c.Stabilize();
  EXPECT_TRUE(c.raft(1).tracker().config.voters.Contains(4));
  ASSERT_TRUE(c.node(1).Propose("after").ok());
  c.Stabilize();
  ASSERT_FALSE(c.member(4).applied.empty());
  EXPECT_EQ(c.member(4).applied.back().data, "after");
}

// Replaces voters 2 and 3 of a led {1,2,3} cluster with 4 and 5 at once:
// only safe through a joint configuration.
void ReplaceTwoVoters(TestCluster& c, ConfChange::Transition t) {
  c.TickElection(1);
  c.Stabilize();
  c.AddEmptyMember(4);
  c.AddEmptyMember(5);
  ASSERT_TRUE(
      c.node(1)
          .ProposeConfChange(Change(
              {{T::kAddNode, 4}, {T::kAddNode, 5}, {T::kRemoveNode, 2}, {T::kRemoveNode, 3}}, t))
          .ok());
  c.Stabilize();
}

TEST(Section6_Membership, JointConsensusEntersAndAutoLeaves) {
  TestCluster c({1, 2, 3});
  ReplaceTwoVoters(c, ConfChange::Transition::kAuto);
  const auto& cfg = c.raft(1).tracker().config;
  EXPECT_TRUE(cfg.voters.outgoing.empty()) << "the joint configuration was left automatically";
  EXPECT_EQ(cfg.voters.incoming.ids(), (std::set<NodeId>{1, 4, 5}));
  ASSERT_TRUE(c.node(1).Propose("new-config").ok());
  c.Stabilize();
  EXPECT_EQ(c.member(5).applied.back().data, "new-config");
}

TEST(Section6_Membership, JointQuorumNeedsBothHalves) {
  TestCluster c({1, 2, 3});
  ReplaceTwoVoters(c, ConfChange::Transition::kJointExplicit);
  ASSERT_FALSE(c.raft(1).tracker().config.voters.outgoing.empty()) << "explicit: stays joint";
  // The old half (1,2,3) alone cannot commit: cut 4 and 5.
  c.Isolate(4);
  c.Isolate(5);
  Index before = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).Propose("needs-both").ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(1).log().committed(), before);
  c.Heal();
  c.Tick(1, 1);
  c.Stabilize();
  EXPECT_GT(c.raft(1).log().committed(), before);
  // Only an empty change leaves an explicit joint configuration.
  ASSERT_TRUE(c.node(1).ProposeConfChange(ConfChange{}).ok());
  c.Stabilize();
  EXPECT_TRUE(c.raft(1).tracker().config.voters.outgoing.empty());
}

TEST(Section6_Membership, SecondConfChangeRefusedWhileFirstUnapplied) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.AddEmptyMember(4);
  c.AddEmptyMember(5);
  ASSERT_TRUE(c.node(1).ProposeConfChange(Change({{T::kAddNode, 4}})).ok());
  ASSERT_TRUE(c.node(1).ProposeConfChange(Change({{T::kAddNode, 5}})).ok());
  c.Stabilize();
  EXPECT_TRUE(c.raft(1).tracker().config.voters.Contains(4));
  EXPECT_FALSE(c.raft(1).tracker().config.voters.Contains(5))
      << "the second change is replaced by an empty entry";
}

TEST(Section6_Membership, RemovedLeaderStepsDown) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).ProposeConfChange(Change({{T::kRemoveNode, 1}})).ok());
  c.Stabilize();
  EXPECT_NE(c.raft(1).state(), StateType::kLeader);
  for (int i = 0; i < 40 && c.Leader() == kNoNode; i++) {
    for (NodeId id : {2, 3}) c.Tick(id);
    c.Stabilize();
  }
  NodeId leader = c.Leader();
  EXPECT_TRUE(leader == 2 || leader == 3);
}

TEST(Section6_Membership, LearnerReplicatesButNeverVotesOrCampaigns) {
  TestCluster c({1, 2, 3}, {4});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).Propose("x").ok());
  c.Stabilize();
  ASSERT_EQ(c.member(4).applied.size(), 1u) << "the learner receives the log";
  // A learner never starts an election.
  c.Isolate(4);
  c.Tick(4, 100);
  c.Stabilize();
  EXPECT_EQ(c.raft(4).state(), StateType::kFollower);
  EXPECT_EQ(c.raft(4).term(), c.raft(1).term());
  // And its acknowledgements do not count toward the quorum.
  c.Heal();
  c.Isolate(2);
  c.Isolate(3);
  Index before = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).Propose("y").ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(1).log().committed(), before);
}

TEST(Section6_Membership, LearnerPromotion) {
  TestCluster c({1, 2, 3}, {4});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).ProposeConfChange(Change({{T::kAddNode, 4}})).ok());
  c.Stabilize();
  EXPECT_TRUE(c.raft(4).tracker().config.voters.Contains(4));
  EXPECT_FALSE(c.raft(4).is_learner());
  // Now 4 can win an election (a transfer to a learner would be ignored).
  c.node(1).TransferLeader(4);
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 4u);
}

// --- 9.6 Preventing disruptions (thesis) ---------------------------------------

TEST(Thesis9_6_PreVote, PartitionedNodeDoesNotInflateTerm) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  Term term = c.raft(1).term();
  c.Isolate(3);
  for (int i = 0; i < 10; i++) {
    c.TickElection(3);
    c.Stabilize();
  }
  EXPECT_EQ(c.raft(3).term(), term) << "pre-votes never win, so the term stays";
  EXPECT_EQ(c.raft(3).state(), StateType::kPreCandidate);
  c.Heal();
  c.Tick(1, 1);
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 1u) << "the rejoining node does not depose the leader";
  EXPECT_EQ(c.raft(1).term(), term);
}

TEST(Thesis9_6_CheckQuorum, LeaderStepsDownWithoutQuorum) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(1);
  Config defaults;
  for (int i = 0; i < 2 * defaults.election_ticks; i++) {
    c.Tick(1, 1);
    c.Stabilize();
  }
  EXPECT_EQ(c.raft(1).state(), StateType::kFollower);
}

TEST(Thesis9_6_CheckQuorum, VoteIgnoredWhileLeaderLeaseHolds) {
  Solo s(1, {1, 2, 3}, NoPreVote());
  ASSERT_TRUE(s.node->Step(Msg(MessageType::kHeartbeat, 2, 1, 1)).ok());
  s.Drain();
  Message vote = Msg(MessageType::kVote, 3, 1, 2);
  vote.index = 10;
  vote.log_term = 1;
  ASSERT_TRUE(s.node->Step(vote).ok());
  EXPECT_TRUE(OfType(s.Drain(), MessageType::kVoteResp).empty());
  EXPECT_EQ(s.node->raft().term(), 1u) << "a disruptive candidate does not bump our term";
}

// --- Flow control ---------------------------------------------------------------

TEST(FlowControl, InflightWindowBoundsMessagesInFlight) {
  TestCluster c({1, 2}, {}, [](Config& cfg) {
    cfg.max_inflight_msgs = 3;
    cfg.max_msg_bytes = 30;  // one entry per append
  });
  c.TickElection(1);
  c.Stabilize();
  for (int i = 0; i < 10; i++) ASSERT_TRUE(c.node(1).Propose("x").ok());
  auto msgs = c.TakeMessages();
  EXPECT_EQ(OfType(msgs, MessageType::kApp).size(), 3u) << "the window holds three appends";
  for (const auto& m : msgs) c.Deliver(m);
  c.Stabilize();
  EXPECT_EQ(c.raft(2).log().LastIndex(), 11u) << "acks open the window until all are sent";
}

TEST(FlowControl, BatchedProposalGoesOutAsOneAppendAndForwardsAsOneMessage) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  const Index before = c.raft(1).log().LastIndex();
  ASSERT_TRUE(c.node(1).ProposeBatch({"a", "b", "c"}).ok());
  auto msgs = c.TakeMessages();
  auto apps = OfType(msgs, MessageType::kApp);
  ASSERT_EQ(apps.size(), 2u) << "one append per follower";
  for (const Message& m : apps) EXPECT_EQ(m.entries.size(), 3u);
  for (const auto& m : msgs) c.Deliver(m);
  c.Stabilize();
  EXPECT_EQ(c.raft(1).log().committed(), before + 3);

  // From a follower: one forwarded proposal carrying all of them, in order.
  ASSERT_TRUE(c.node(2).ProposeBatch({"d", "e"}).ok());
  msgs = c.TakeMessages();
  auto props = OfType(msgs, MessageType::kProp);
  ASSERT_EQ(props.size(), 1u);
  ASSERT_EQ(props[0].entries.size(), 2u);
  EXPECT_EQ(props[0].entries[0].data, "d");
  EXPECT_EQ(props[0].entries[1].data, "e");
  for (const auto& m : msgs) c.Deliver(m);
  c.Stabilize();
  for (NodeId id : {1, 2, 3}) {
    const auto& applied = c.member(id).applied;
    ASSERT_GE(applied.size(), 5u);
    std::string last5;
    for (size_t i = applied.size() - 5; i < applied.size(); i++) last5 += applied[i].data;
    EXPECT_EQ(last5, "abcde") << "member " << id;
  }
}

TEST(FlowControl, InflightsRespectByteLimit) {
  Inflights in(100, 1000);
  in.Add(1, 400);
  in.Add(2, 400);
  EXPECT_FALSE(in.Full());
  in.Add(3, 400);
  EXPECT_TRUE(in.Full());
  in.FreeLE(2);
  EXPECT_FALSE(in.Full());
  EXPECT_EQ(in.Count(), 1u);
  EXPECT_EQ(in.Bytes(), 400u);
}

TEST(FlowControl, UncommittedProposalBytesAreCapped) {
  TestCluster c({1, 2, 3}, {}, [](Config& cfg) { cfg.max_uncommitted_bytes = 100; });
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(1);
  std::string forty(40, 'x');
  EXPECT_TRUE(c.node(1).Propose(forty).ok());
  EXPECT_TRUE(c.node(1).Propose(forty).ok());
  EXPECT_TRUE(IsErrProposalDropped(c.node(1).Propose(forty)));
  c.Heal();
  c.Tick(1, 1);
  c.Stabilize();
  EXPECT_TRUE(c.node(1).Propose(forty).ok()) << "committing frees the budget";
}

// --- Snapshots and log compaction (7) ---------------------------------------------

TEST(Section7_LogCompaction, LaggingFollowerGetsSnapshot) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(3);
  for (int i = 0; i < 20; i++) ASSERT_TRUE(c.node(1).Propose("e" + std::to_string(i)).ok());
  c.Stabilize();
  c.CompactTo(1, c.raft(1).log().applied());
  c.Heal();
  size_t snaps = 0;
  c.SetFilter([&](const Message& m) {
    if (m.type == MessageType::kSnap) snaps++;
    return true;
  });
  for (int i = 0; i < 3; i++) {
    c.Tick(1, 1);
    c.Stabilize();
    if (snaps > 0) c.node(1).ReportSnapshot(3, false);
  }
  EXPECT_EQ(snaps, 1u);
  EXPECT_EQ(c.storage(3).FirstIndex() - 1, c.storage(1).FirstIndex() - 1);
  ASSERT_TRUE(c.node(1).Propose("after-snapshot").ok());
  c.Stabilize();
  EXPECT_EQ(c.member(3).applied.back().data, "after-snapshot");
  EXPECT_EQ(c.raft(3).log().committed(), c.raft(1).log().committed());
}

TEST(Section7_LogCompaction, OldSnapshotIsIgnored) {
  TestCluster c({1, 2});
  c.TickElection(1);
  c.Stabilize();
  for (int i = 0; i < 5; i++) ASSERT_TRUE(c.node(1).Propose("e").ok());
  c.Stabilize();
  Index committed = c.raft(2).log().committed();
  Message snap = Msg(MessageType::kSnap, 1, 2, c.raft(1).term());
  snap.snapshot = Snapshot{"old", SnapshotMetadata{ConfState{{1, 2}, {}, {}, {}, false}, 2, 1}};
  ASSERT_TRUE(c.node(2).Step(snap).ok());
  c.ProcessReady(2);
  EXPECT_EQ(c.raft(2).log().committed(), committed);
  EXPECT_EQ(c.raft(2).log().applied(), committed);
}

// --- Linearizable reads (6.4) ---------------------------------------------------------

TEST(Section6_4_ReadIndex, ReadIndexConfirmsLeadershipWithHeartbeatRound) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).Propose("x").ok());
  c.Stabilize();
  ASSERT_TRUE(c.node(1).ReadIndex("r1").ok());
  auto msgs = c.TakeMessages();
  EXPECT_EQ(OfType(msgs, MessageType::kHeartbeat).size(), 2u);
  EXPECT_TRUE(c.member(1).read_states.empty()) << "no answer before a quorum confirms";
  for (const auto& m : msgs) c.Deliver(m);
  c.Stabilize();
  ASSERT_EQ(c.member(1).read_states.size(), 1u);
  EXPECT_EQ(c.member(1).read_states[0].request_ctx, "r1");
  EXPECT_EQ(c.member(1).read_states[0].index, c.raft(1).log().committed());
}

TEST(Section6_4_ReadIndex, FollowerReadIsServedThroughLeader) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).Propose("x").ok());
  c.Stabilize();
  ASSERT_TRUE(c.node(2).ReadIndex("f1").ok());
  c.Stabilize();
  ASSERT_EQ(c.member(2).read_states.size(), 1u);
  EXPECT_EQ(c.member(2).read_states[0].index, 2u);
}

TEST(Section6_4_ReadIndex, IsolatedLeaderCannotServeReads) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(1);
  ASSERT_TRUE(c.node(1).ReadIndex("stale?").ok());
  c.Stabilize();
  EXPECT_TRUE(c.member(1).read_states.empty());
}

TEST(Section6_4_ReadIndex, NewLeaderWaitsForEntryOfItsTerm) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  // Win the election but hold back every append: the empty entry of the new
  // term is not committed yet.
  c.SetFilter([](const Message& m) { return m.type != MessageType::kApp; });
  c.Stabilize();
  ASSERT_EQ(c.Leader(), 1u);
  ASSERT_TRUE(c.node(1).ReadIndex("early").ok());
  c.Stabilize();
  EXPECT_TRUE(c.member(1).read_states.empty()) << "commit index of the new term is unknown";
  c.SetFilter({});
  c.Tick(1, 1);
  c.Stabilize();
  ASSERT_EQ(c.member(1).read_states.size(), 1u);
  EXPECT_EQ(c.member(1).read_states[0].index, 1u);
}

TEST(Section6_4_ReadIndex, LeaseBasedReadIsAnsweredAtOnce) {
  TestCluster c({1, 2, 3}, {},
                [](Config& cfg) { cfg.read_only_option = ReadOnlyOption::kLeaseBased; });
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).ReadIndex("lease").ok());
  c.ProcessReady(1);
  ASSERT_EQ(c.member(1).read_states.size(), 1u);
}

TEST(Section6_4_ReadIndex, PendingReadsAreBounded) {
  TestCluster c({1, 2, 3}, {}, [](Config& cfg) { cfg.max_pending_reads = 2; });
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(1);
  EXPECT_TRUE(c.node(1).ReadIndex("a").ok());
  EXPECT_TRUE(c.node(1).ReadIndex("b").ok());
  EXPECT_TRUE(IsErrProposalDropped(c.node(1).ReadIndex("c")));
}

// --- Leadership transfer (3.10) ---------------------------------------------------------

TEST(Thesis3_10_LeadershipTransfer, TransferToUpToDateFollower) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.node(1).TransferLeader(3);
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 3u);
  EXPECT_EQ(c.raft(1).state(), StateType::kFollower);
}

TEST(Thesis3_10_LeadershipTransfer, TransferToLaggingFollowerCatchesItUpFirst) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(3);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(c.node(1).Propose("x").ok());
  c.Stabilize();
  c.Heal();
  c.node(1).TransferLeader(3);
  EXPECT_TRUE(IsErrProposalDropped(c.node(1).Propose("during")))
      << "no proposals while a transfer is under way";
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 3u);
  EXPECT_EQ(c.raft(3).log().LastIndex(), c.raft(1).log().LastIndex());
}

TEST(Thesis3_10_LeadershipTransfer, TransferAbortsAfterElectionTimeout) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  c.Isolate(3);
  c.node(1).TransferLeader(3);
  c.Stabilize();
  EXPECT_EQ(c.raft(1).lead_transferee(), 3u);
  Config defaults;
  c.Tick(1, defaults.election_ticks);
  c.Stabilize();
  EXPECT_EQ(c.raft(1).lead_transferee(), kNoNode);
  EXPECT_TRUE(c.node(1).Propose("resumed").ok());
}

TEST(Thesis3_10_LeadershipTransfer, TransferToLearnerIsIgnored) {
  TestCluster c({1, 2, 3}, {4});
  c.TickElection(1);
  c.Stabilize();
  c.node(1).TransferLeader(4);
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 1u);
  EXPECT_EQ(c.raft(1).lead_transferee(), kNoNode);
}

// --- Restart and durability ----------------------------------------------------------------

TEST(Durability, RestartedNodeKeepsTermVoteAndLog) {
  TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  ASSERT_TRUE(c.node(1).Propose("x").ok());
  c.Stabilize();
  HardState hs = c.raft(2).GetHardState();
  c.Restart(2);
  EXPECT_EQ(c.raft(2).GetHardState(), hs);
  c.ProcessReady(2);
  ASSERT_EQ(c.member(2).applied.size(), 1u) << "committed entries are handed out again";
  EXPECT_EQ(c.member(2).applied[0].data, "x");
}

TEST(Durability, SavedCommitIndexBelowTheSnapshotIsRaisedToIt) {
  // The server applies entries it saved earlier while the write that
  // carries their commit index is still syncing, and may snapshot them
  // before that write lands. A restart then finds a snapshot past the saved
  // commit index; everything the snapshot covers is committed.
  MemoryStorage s;
  Snapshot snap;
  snap.metadata.index = 10;
  snap.metadata.term = 2;
  snap.metadata.conf_state = ConfState{{1, 2, 3}, {}, {}, {}, false};
  ASSERT_TRUE(s.ApplySnapshot(snap).ok());
  HardState hs;
  hs.term = 2;
  hs.vote = 1;
  hs.commit = 7;
  s.SetHardState(hs);
  Config cfg;
  cfg.id = 1;
  cfg.storage = &s;
  Raft r(cfg);
  EXPECT_EQ(r.log().committed(), 10u);
  EXPECT_EQ(r.term(), 2u);
}

TEST(Config, RejectsInvalidSettings) {
  MemoryStorage s;
  Config c;
  c.storage = &s;
  EXPECT_FALSE(c.Validate().ok());  // id 0
  c.id = 1;
  EXPECT_TRUE(c.Validate().ok());
  c.election_ticks = 1;
  EXPECT_FALSE(c.Validate().ok());
  c.election_ticks = 10;
  c.check_quorum = false;
  c.read_only_option = ReadOnlyOption::kLeaseBased;
  EXPECT_FALSE(c.Validate().ok());
}

TEST(RawNodeApi, LocalMessagesCannotBeStepped) {
  Solo s(1, {1, 2, 3});
  EXPECT_EQ(s.node->Step(Msg(MessageType::kHup, 1, 1, 0)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.node->Step(Msg(MessageType::kAppResp, 9, 1, 1)).code(), absl::StatusCode::kNotFound)
      << "responses from unknown peers are refused";
}

}  // namespace
}  // namespace ganglion::raft
