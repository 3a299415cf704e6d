#include "raft/confchange.h"

#include <gtest/gtest.h>

namespace ganglion::raft {
namespace {

using T = ConfChangeSingle::Type;

ProgressTracker Tracker(const ConfState& cs) {
  ProgressTracker t(16, 1 << 20);
  auto r = RestoreConfig(t, 10, cs);
  EXPECT_TRUE(r.ok()) << r.status();
  t.config = r->config;
  t.progress = r->progress;
  return t;
}

void Install(ProgressTracker& t, const absl::StatusOr<ConfChangeResult>& r) {
  ASSERT_TRUE(r.ok()) << r.status();
  t.config = r->config;
  t.progress = r->progress;
}

TEST(Changer, SimpleAllowsOneVoterAtATime) {
  ProgressTracker t = Tracker({{1, 2, 3}, {}, {}, {}, false});
  Changer c(t, 10);
  auto r = c.Simple({{T::kAddNode, 4}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->config.voters.incoming.ids(), (std::set<NodeId>{1, 2, 3, 4}));
  EXPECT_EQ(r->progress.at(4).next, 10u) << "new peers probe from the leader's last index";
  auto two = c.Simple({{T::kAddNode, 4}, {T::kAddNode, 5}});
  EXPECT_FALSE(two.ok());
  EXPECT_EQ(two.status().message(), "more than one voter changed without entering joint config");
  // Adding a learner alongside one voter change is fine.
  EXPECT_TRUE(c.Simple({{T::kAddNode, 4}, {T::kAddLearnerNode, 5}}).ok());
  EXPECT_FALSE(c.Simple({{T::kRemoveNode, 1}, {T::kRemoveNode, 2}, {T::kRemoveNode, 3}}).ok());
}

TEST(Changer, EnterAndLeaveJoint) {
  ProgressTracker t = Tracker({{1, 2, 3}, {}, {}, {}, false});
  Install(t, Changer(t, 10).EnterJoint(
                 true, {{T::kAddNode, 4}, {T::kRemoveNode, 3}, {T::kAddLearnerNode, 2}}));
  EXPECT_EQ(t.config.voters.incoming.ids(), (std::set<NodeId>{1, 4}));
  EXPECT_EQ(t.config.voters.outgoing.ids(), (std::set<NodeId>{1, 2, 3}));
  EXPECT_EQ(t.config.learners_next, (std::set<NodeId>{2})) << "2 votes in the old half until left";
  EXPECT_TRUE(t.config.auto_leave);
  EXPECT_TRUE(t.progress.count(3)) << "3 still votes in the outgoing half";
  EXPECT_FALSE(Changer(t, 10).EnterJoint(false, {{T::kAddNode, 5}}).ok()) << "already joint";
  EXPECT_FALSE(Changer(t, 10).Simple({{T::kAddNode, 5}}).ok());
  Install(t, Changer(t, 10).LeaveJoint());
  EXPECT_TRUE(t.config.voters.outgoing.empty());
  EXPECT_EQ(t.config.learners, (std::set<NodeId>{2}));
  EXPECT_TRUE(t.progress.at(2).is_learner);
  EXPECT_FALSE(t.progress.count(3));
  EXPECT_FALSE(t.config.auto_leave);
  EXPECT_FALSE(Changer(t, 10).LeaveJoint().ok());
}

TEST(Changer, RestoreRoundTripsJointConfState) {
  ConfState cs{{1, 4}, {5}, {1, 2, 3}, {2}, true};
  ProgressTracker t = Tracker(cs);
  EXPECT_EQ(t.GetConfState(), cs);
  EXPECT_TRUE(CheckConfigInvariants(t.config, t.progress).ok());
}

TEST(ConfChangeCodec, RoundTripAndRejectsGarbage) {
  ConfChange cc;
  cc.transition = ConfChange::Transition::kJointExplicit;
  cc.changes = {{T::kAddNode, 7}, {T::kRemoveNode, 1}, {T::kAddLearnerNode, 9}};
  cc.context = "ctx";
  auto back = DecodeConfChange(EncodeConfChange(cc));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, cc);
  std::string bad = EncodeConfChange(cc);
  bad.pop_back();
  EXPECT_FALSE(DecodeConfChange(bad).ok());
  EXPECT_FALSE(DecodeConfChange("").ok());
  bool auto_leave = true;
  EXPECT_TRUE(cc.EntersJoint(&auto_leave));
  EXPECT_FALSE(auto_leave);
  ConfChange one;
  one.changes = {{T::kAddNode, 2}};
  EXPECT_FALSE(one.EntersJoint(&auto_leave));
}

}  // namespace
}  // namespace ganglion::raft
