// The v3lock and v3election gRPC services, run identically against etcd 3.4
// (the reference) and ganglion: mutual exclusion, the lock key's create
// revision as a fencing token, and an election's leader, proclamations,
// observation and resignation.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/process_cluster.h"

namespace ganglion::tests {
namespace {

using std::chrono::milliseconds;

class Coordination : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.binary = GetParam();
    options.members = 3;
    cluster_ = std::make_unique<ProcessCluster>(options);
    ASSERT_TRUE(cluster_->Start().ok());
    channel_ =
        grpc::CreateChannel(cluster_->client_endpoint(1), grpc::InsecureChannelCredentials());
    kv_ = etcdserverpb::KV::NewStub(channel_);
    leases_ = etcdserverpb::Lease::NewStub(channel_);
    lock_ = v3lockpb::Lock::NewStub(channel_);
    election_ = v3electionpb::Election::NewStub(channel_);
  }

  int64_t Grant() {
    grpc::ClientContext ctx;
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(60);
    etcdserverpb::LeaseGrantResponse resp;
    grpc::Status s = leases_->LeaseGrant(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.id();
  }

  // A write allowed only while `key` still has create revision `token`.
  bool GuardedPut(const std::string& key, int64_t token, const std::string& value) {
    grpc::ClientContext ctx;
    etcdserverpb::TxnRequest txn;
    auto* c = txn.add_compare();
    c->set_key(key);
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_create_revision(token);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key("protected");
    put->set_value(value);
    etcdserverpb::TxnResponse resp;
    grpc::Status s = kv_->Txn(&ctx, txn, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.succeeded();
  }

  int64_t CreateRevision(const std::string& key) {
    grpc::ClientContext ctx;
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(kv_->Range(&ctx, req, &resp).ok());
    return resp.kvs().empty() ? 0 : resp.kvs(0).create_revision();
  }

  std::unique_ptr<ProcessCluster> cluster_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> leases_;
  std::unique_ptr<v3lockpb::Lock::Stub> lock_;
  std::unique_ptr<v3electionpb::Election::Stub> election_;
};

TEST_P(Coordination, LockIsExclusiveAndItsRevisionFencesStaleHolders) {
  const int64_t a = Grant(), b = Grant();
  grpc::ClientContext ctx_a;
  v3lockpb::LockRequest req_a;
  req_a.set_name("mylock");
  req_a.set_lease(a);
  v3lockpb::LockResponse held_a;
  ASSERT_TRUE(lock_->Lock(&ctx_a, req_a, &held_a).ok());
  EXPECT_EQ(held_a.key().rfind("mylock/", 0), 0u) << held_a.key();
  const int64_t token_a = CreateRevision(held_a.key());
  ASSERT_GT(token_a, 0);

  // B waits while A holds it.
  auto b_locked = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(20000));
    v3lockpb::LockRequest req;
    req.set_name("mylock");
    req.set_lease(b);
    v3lockpb::LockResponse resp;
    grpc::Status s = lock_->Lock(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.key();
  });
  EXPECT_EQ(b_locked.wait_for(milliseconds(1500)), std::future_status::timeout);
  EXPECT_TRUE(GuardedPut(held_a.key(), token_a, "from A"));

  grpc::ClientContext unlock_ctx;
  v3lockpb::UnlockRequest unlock;
  unlock.set_key(held_a.key());
  v3lockpb::UnlockResponse unlocked;
  ASSERT_TRUE(lock_->Unlock(&unlock_ctx, unlock, &unlocked).ok());
  ASSERT_EQ(b_locked.wait_for(milliseconds(10000)), std::future_status::ready);
  const std::string key_b = b_locked.get();
  EXPECT_NE(key_b, held_a.key());

  // A, paused past its turn, still holds its old token: its write is refused.
  EXPECT_FALSE(GuardedPut(held_a.key(), token_a, "stale A"));
  EXPECT_TRUE(GuardedPut(key_b, CreateRevision(key_b), "from B"));
}

TEST_P(Coordination, ElectionLeaderProclaimsIsObservedAndResigns) {
  const int64_t a = Grant(), b = Grant();
  grpc::ClientContext campaign_ctx;
  v3electionpb::CampaignRequest campaign;
  campaign.set_name("myelection");
  campaign.set_lease(a);
  campaign.set_value("a1");
  v3electionpb::CampaignResponse won;
  ASSERT_TRUE(election_->Campaign(&campaign_ctx, campaign, &won).ok());
  EXPECT_EQ(won.leader().name(), "myelection");
  EXPECT_EQ(won.leader().lease(), a);

  // An observer sees the leader's value each time it changes.
  grpc::ClientContext observe_ctx;
  v3electionpb::LeaderRequest observe;
  observe.set_name("myelection");
  auto stream = election_->Observe(&observe_ctx, observe);
  v3electionpb::LeaderResponse seen;
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.kv().value(), "a1");

  auto b_won = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(20000));
    v3electionpb::CampaignRequest req;
    req.set_name("myelection");
    req.set_lease(b);
    req.set_value("b1");
    v3electionpb::CampaignResponse resp;
    EXPECT_TRUE(election_->Campaign(&ctx, req, &resp).ok());
    return resp.leader();
  });
  EXPECT_EQ(b_won.wait_for(milliseconds(1500)), std::future_status::timeout);

  {
    grpc::ClientContext ctx;
    v3electionpb::ProclaimRequest req;
    *req.mutable_leader() = won.leader();
    req.set_value("a2");
    v3electionpb::ProclaimResponse resp;
    ASSERT_TRUE(election_->Proclaim(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.kv().value(), "a2");
  {
    grpc::ClientContext ctx;
    v3electionpb::LeaderRequest req;
    req.set_name("myelection");
    v3electionpb::LeaderResponse resp;
    ASSERT_TRUE(election_->Leader(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.kv().value(), "a2");
  }
  {
    grpc::ClientContext ctx;
    v3electionpb::ResignRequest req;
    *req.mutable_leader() = won.leader();
    v3electionpb::ResignResponse resp;
    ASSERT_TRUE(election_->Resign(&ctx, req, &resp).ok());
  }
  ASSERT_EQ(b_won.wait_for(milliseconds(10000)), std::future_status::ready);
  const v3electionpb::LeaderKey b_leader = b_won.get();
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.kv().value(), "b1");
  observe_ctx.TryCancel();

  // The resigned leader can no longer proclaim.
  grpc::ClientContext ctx;
  v3electionpb::ProclaimRequest req;
  *req.mutable_leader() = won.leader();
  req.set_value("a3");
  v3electionpb::ProclaimResponse resp;
  grpc::Status s = election_->Proclaim(&ctx, req, &resp);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_message(), "election: not leader");
  EXPECT_EQ(b_leader.lease(), b);
}

INSTANTIATE_TEST_SUITE_P(EtcdAndGanglion, Coordination,
                         ::testing::Values(std::string("/usr/bin/etcd"),
                                           std::string(GANGLION_BINARY)),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "/usr/bin/etcd" ? std::string("etcd")
                                                                : std::string("ganglion");
                         });

}  // namespace
}  // namespace ganglion::tests
