// The etcd v3 calls the load generators make, one class per kind of call,
// each an Op for the asynchronous driver. They speak only the etcd API, so
// they measure ganglion and etcd alike.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/load/driver.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace ganglion::bench {

// Keys "<prefix><zero-padded number>" of exactly key_bytes (at least the
// digits a number needs), numbers 0 .. count-1.
struct KeySpace {
  std::string prefix = "k";
  int key_bytes = 8;
  uint64_t count = 10000;
  std::string Key(uint64_t n) const;
};

struct CallOptions {
  std::chrono::milliseconds timeout{10000};
};

// A unary etcd call with a fresh context per call.
template <class Resp>
class UnaryCall {
 public:
  grpc::ClientContext* NewContext(const CallOptions& o) {
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + o.timeout);
    return ctx_.get();
  }
  void Finish(std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader, void* tag) {
    reader_ = std::move(reader);
    reader_->StartCall();
    reader_->Finish(&resp_, &status_, tag);
  }
  const Resp& response() const { return resp_; }
  const grpc::Status& status() const { return status_; }

 private:
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader_;
  Resp resp_;
  grpc::Status status_;
};

// Put a random key of the key space (or the keys in turn), value_bytes long.
// With timestamp_values the value is the send time (MonotonicNowNs) in
// decimal, for watch delivery latency. on_ok(key number) after each success.
class PutOp final : public Op {
 public:
  struct Options {
    KeySpace keys;
    int value_bytes = 256;
    bool sequential_keys = false;  // 0, 1, 2, ... (shared by every PutOp with the same counter)
    std::shared_ptr<std::atomic<uint64_t>> sequence;
    bool timestamp_values = false;
    std::function<void(uint64_t key)> on_ok;
    CallOptions call;
  };
  PutOp(std::shared_ptr<grpc::Channel> channel, Options options, uint64_t seed);
  void Start(grpc::CompletionQueue* cq, void* tag) override;
  bool Step(bool ok) override;
  const grpc::Status& status() const override { return call_.status(); }
  const std::string& kind() const override { return kind_; }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
  Options options_;
  std::mt19937_64 rng_;
  std::string value_;
  uint64_t key_ = 0;
  etcdserverpb::PutRequest req_;
  UnaryCall<etcdserverpb::PutResponse> call_;
  const std::string kind_ = "put";
};

// Range of one random key, linearizable or serializable.
class RangeOp final : public Op {
 public:
  RangeOp(std::shared_ptr<grpc::Channel> channel, KeySpace keys, bool serializable,
          CallOptions call, uint64_t seed);
  void Start(grpc::CompletionQueue* cq, void* tag) override;
  bool Step(bool ok) override;
  const grpc::Status& status() const override { return call_.status(); }
  const std::string& kind() const override { return kind_; }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
  KeySpace keys_;
  bool serializable_;
  CallOptions call_options_;
  std::mt19937_64 rng_;
  etcdserverpb::RangeRequest req_;
  UnaryCall<etcdserverpb::RangeResponse> call_;
  const std::string kind_;
};

// Compare-and-set: Txn(if mod_revision(key) == last seen, put; else get).
// Reports "txn" when the compare held and "txn-conflict" when it did not (the
// get's answer is the next expected revision), so contention is visible.
// With `owner` of `owners`, the client uses only keys n with n % owners ==
// owner: disjoint key sets measure the Txn path without contention; owners
// = 1 makes every client contend for every key.
class TxnCasOp final : public Op {
 public:
  TxnCasOp(std::shared_ptr<grpc::Channel> channel, KeySpace keys, int value_bytes, CallOptions call,
           uint64_t seed, uint64_t owner = 0, uint64_t owners = 1);
  void Start(grpc::CompletionQueue* cq, void* tag) override;
  bool Step(bool ok) override;
  const grpc::Status& status() const override { return call_.status(); }
  const std::string& kind() const override { return *kind_; }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
  KeySpace keys_;
  CallOptions call_options_;
  std::mt19937_64 rng_;
  std::string value_;
  uint64_t owner_, owners_;
  std::unordered_map<uint64_t, int64_t> mod_revision_;  // per key, as last seen
  uint64_t key_ = 0;
  etcdserverpb::TxnRequest req_;
  UnaryCall<etcdserverpb::TxnResponse> call_;
  const std::string kind_ok_ = "txn", kind_conflict_ = "txn-conflict";
  const std::string* kind_ = &kind_ok_;
};

// Grants leases_per_client leases (kind "lease-grant"), then keeps them alive
// in turn through one LeaseKeepAlive stream (kind "lease-keepalive": one
// request and its response).
class LeaseOp final : public Op {
 public:
  LeaseOp(std::shared_ptr<grpc::Channel> channel, int leases_per_client, int64_t ttl_seconds,
          CallOptions call);
  void Start(grpc::CompletionQueue* cq, void* tag) override;
  bool Step(bool ok) override;
  const grpc::Status& status() const override { return status_; }
  const std::string& kind() const override { return *kind_; }
  void Cancel() override;

 private:
  enum class Phase { kGrant, kOpen, kWrite, kRead, kFinish };
  void Write();

  std::unique_ptr<etcdserverpb::Lease::Stub> stub_;
  int leases_per_client_;
  int64_t ttl_seconds_;
  CallOptions call_options_;
  std::vector<int64_t> leases_;
  size_t next_keepalive_ = 0;
  UnaryCall<etcdserverpb::LeaseGrantResponse> grant_;
  std::unique_ptr<grpc::ClientContext> stream_ctx_;  // one per stream
  std::unique_ptr<grpc::ClientAsyncReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                                                etcdserverpb::LeaseKeepAliveResponse>>
      stream_;
  grpc::CompletionQueue* cq_ = nullptr;
  void* tag_ = nullptr;
  etcdserverpb::LeaseKeepAliveRequest ka_req_;
  etcdserverpb::LeaseKeepAliveResponse ka_resp_;
  Phase phase_ = Phase::kGrant;
  grpc::Status status_;
  const std::string kind_grant_ = "lease-grant", kind_keepalive_ = "lease-keepalive";
  const std::string* kind_ = &kind_grant_;
};

// Picks one of its ops per call, by weight.
class MixedOp final : public Op {
 public:
  MixedOp(std::vector<std::pair<std::unique_ptr<Op>, int>> weighted, uint64_t seed);
  void Start(grpc::CompletionQueue* cq, void* tag) override;
  bool Step(bool ok) override { return current_->Step(ok); }
  const grpc::Status& status() const override { return current_->status(); }
  const std::string& kind() const override { return current_->kind(); }
  void Cancel() override;

 private:
  std::vector<std::pair<std::unique_ptr<Op>, int>> ops_;
  int total_weight_ = 0;
  std::mt19937_64 rng_;
  Op* current_ = nullptr;
};

}  // namespace ganglion::bench
