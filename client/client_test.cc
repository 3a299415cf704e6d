// Unit tests of the client's pure logic: how the transaction builder encodes
// etcd's messages, the retry rules, and the endpoints' health back-off.
#include "client/endpoints.h"
#include "client/ops.h"
#include "gtest/gtest.h"

namespace ganglion::client {
namespace {

TEST(PrefixEnd, IncrementsTheLastByteThatCanBe) {
  EXPECT_EQ(PrefixEnd("abc"), "abd");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TEST(Txn, EncodesComparesAndBothBranches) {
  PutOptions with_lease;
  with_lease.lease = 42;
  GetOptions prefix_of_three;
  prefix_of_three.prefix = true;
  prefix_of_three.limit = 3;
  DeleteOptions from_key;
  from_key.from_key = true;
  Txn txn;
  txn.If(ModRevision("cfg") == 7)
      .If(Value("owner") != "me")
      .If(Version("v").WithPrefix() > 2)
      .Then(Op::Put("cfg", "new", with_lease))
      .Else(Op::Get("cfg", prefix_of_three))
      .Else(Op::Delete("old", from_key));
  const etcdserverpb::TxnRequest req = txn.ToProto();
  ASSERT_EQ(req.compare_size(), 3);
  EXPECT_EQ(req.compare(0).target(), etcdserverpb::Compare::MOD);
  EXPECT_EQ(req.compare(0).result(), etcdserverpb::Compare::EQUAL);
  EXPECT_EQ(req.compare(0).mod_revision(), 7);
  EXPECT_EQ(req.compare(1).target(), etcdserverpb::Compare::VALUE);
  EXPECT_EQ(req.compare(1).result(), etcdserverpb::Compare::NOT_EQUAL);
  EXPECT_EQ(req.compare(1).value(), "me");
  EXPECT_EQ(req.compare(2).result(), etcdserverpb::Compare::GREATER);
  EXPECT_EQ(req.compare(2).range_end(), "w");
  EXPECT_EQ(req.compare(2).version(), 2);
  ASSERT_EQ(req.success_size(), 1);
  EXPECT_EQ(req.success(0).request_put().lease(), 42);
  ASSERT_EQ(req.failure_size(), 2);
  EXPECT_EQ(req.failure(0).request_range().range_end(), "cfh");
  EXPECT_EQ(req.failure(0).request_range().limit(), 3);
  EXPECT_EQ(req.failure(1).request_delete_range().range_end(), std::string(1, '\0'));
  EXPECT_FALSE(txn.read_only());
}

TEST(Txn, ReadOnlyOnlyWhenEveryOperationAtAnyDepthReads) {
  Txn reads;
  reads.If(CreateRevision("k") == 0).Then(Op::Get("k")).Else(Op::Get("j"));
  EXPECT_TRUE(reads.read_only());
  Txn inner;
  inner.Then(Op::Delete("k"));
  Txn outer;
  outer.Then(Op::Get("k")).Else(Op::Nested(inner));
  EXPECT_FALSE(outer.read_only());
  EXPECT_EQ(outer.ToProto().failure(0).request_txn().success(0).request_delete_range().key(), "k");
}

TEST(Retry, WritesAreRetriedOnlyWhenTheyCannotHaveArrived) {
  const grpc::Status down(grpc::UNAVAILABLE, "failed to connect to all addresses");
  const grpc::Status leader_changed(grpc::UNAVAILABLE, "etcdserver: leader changed");
  const grpc::Status no_leader(grpc::UNAVAILABLE, "etcdserver: no leader");
  const grpc::Status bad(grpc::INVALID_ARGUMENT, "etcdserver: key is not provided");
  EXPECT_TRUE(ShouldRetry(down, Idempotency::kIdempotent, true));
  EXPECT_TRUE(ShouldRetry(leader_changed, Idempotency::kIdempotent, true));
  EXPECT_TRUE(ShouldRetry(no_leader, Idempotency::kIdempotent, false));
  EXPECT_FALSE(ShouldRetry(bad, Idempotency::kIdempotent, true));
  EXPECT_TRUE(ShouldRetry(down, Idempotency::kMutation, /*was_connected=*/false));
  EXPECT_FALSE(ShouldRetry(down, Idempotency::kMutation, /*was_connected=*/true));
  EXPECT_FALSE(ShouldRetry(leader_changed, Idempotency::kMutation, false));
  EXPECT_TRUE(IsLeaderError(no_leader));
  EXPECT_FALSE(IsLeaderError(down));
}

TEST(EndpointSet, SkipsAnUnhealthyMemberUntilItsBackOffEnds) {
  EndpointSet set({"a", "b", "c"}, absl::Milliseconds(100), absl::Milliseconds(350));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(set.Pick(t0), 0);
  set.MarkUnhealthy(0, t0);
  EXPECT_EQ(set.Pick(t0), 1);  // moved past the failed member
  set.MarkUnhealthy(1, t0);
  EXPECT_EQ(set.Pick(t0), 2);
  set.MarkUnhealthy(2, t0 + absl::Milliseconds(10));
  // Every member is backing off: the one whose back-off ends first.
  EXPECT_EQ(set.Pick(t0 + absl::Milliseconds(20)), 0);
  EXPECT_TRUE(set.IsHealthy(0, t0 + absl::Milliseconds(100)));
  // A second failure doubles the period; the cap bounds it.
  set.MarkUnhealthy(0, t0 + absl::Milliseconds(100));
  EXPECT_FALSE(set.IsHealthy(0, t0 + absl::Milliseconds(299)));
  EXPECT_TRUE(set.IsHealthy(0, t0 + absl::Milliseconds(300)));
  set.MarkUnhealthy(0, t0 + absl::Milliseconds(300));
  set.MarkUnhealthy(0, t0 + absl::Milliseconds(700));
  set.MarkUnhealthy(0, t0 + absl::Milliseconds(1100));
  EXPECT_TRUE(set.IsHealthy(0, t0 + absl::Milliseconds(1450)));
  set.MarkHealthy(0);
  EXPECT_EQ(set.Pick(t0 + absl::Milliseconds(1100)), 0);
}

TEST(RetryPause, GrowsThenCaps) {
  EXPECT_LT(RetryPause(1), RetryPause(2));
  EXPECT_EQ(RetryPause(10), RetryPause(50));
}

}  // namespace
}  // namespace ganglion::client
