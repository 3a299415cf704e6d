#include "bench/load/ops.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ganglion::bench {

std::string KeySpace::Key(uint64_t n) const {
  std::string digits = std::to_string(n);
  const size_t width =
      std::max<size_t>(digits.size(), static_cast<size_t>(std::max(0, key_bytes)) -
                                          std::min<size_t>(prefix.size(), key_bytes));
  return absl::StrCat(prefix, std::string(width - digits.size(), '0'), digits);
}

// ---- put ------------------------------------------------------------------

PutOp::PutOp(std::shared_ptr<grpc::Channel> channel, Options options, uint64_t seed)
    : stub_(etcdserverpb::KV::NewStub(channel)),
      options_(std::move(options)),
      rng_(seed),
      value_(static_cast<size_t>(std::max(0, options_.value_bytes)), 'v') {}

void PutOp::Start(grpc::CompletionQueue* cq, void* tag) {
  if (options_.sequential_keys && options_.sequence) {
    key_ = options_.sequence->fetch_add(1) % options_.keys.count;
  } else {
    key_ = rng_() % options_.keys.count;
  }
  req_.set_key(options_.keys.Key(key_));
  req_.set_value(options_.timestamp_values ? std::to_string(MonotonicNowNs()) : value_);
  grpc::ClientContext* ctx = call_.NewContext(options_.call);
  call_.Finish(stub_->PrepareAsyncPut(ctx, req_, cq), tag);
}

bool PutOp::Step(bool) {
  if (call_.status().ok() && options_.on_ok) options_.on_ok(key_);
  return true;
}

// ---- range ----------------------------------------------------------------

RangeOp::RangeOp(std::shared_ptr<grpc::Channel> channel, KeySpace keys, bool serializable,
                 CallOptions call, uint64_t seed)
    : stub_(etcdserverpb::KV::NewStub(channel)),
      keys_(std::move(keys)),
      serializable_(serializable),
      call_options_(call),
      rng_(seed),
      kind_(serializable ? "range-serializable" : "range-linearizable") {}

void RangeOp::Start(grpc::CompletionQueue* cq, void* tag) {
  req_.set_key(keys_.Key(rng_() % keys_.count));
  req_.set_serializable(serializable_);
  grpc::ClientContext* ctx = call_.NewContext(call_options_);
  call_.Finish(stub_->PrepareAsyncRange(ctx, req_, cq), tag);
}

bool RangeOp::Step(bool) {
  return true;
}

// ---- txn compare-and-set --------------------------------------------------

TxnCasOp::TxnCasOp(std::shared_ptr<grpc::Channel> channel, KeySpace keys, int value_bytes,
                   CallOptions call, uint64_t seed, uint64_t owner, uint64_t owners)
    : stub_(etcdserverpb::KV::NewStub(channel)),
      keys_(std::move(keys)),
      call_options_(call),
      rng_(seed),
      value_(static_cast<size_t>(std::max(0, value_bytes)), 'v'),
      owner_(owners == 0 ? 0 : owner % owners),
      owners_(std::max<uint64_t>(1, owners)) {}

void TxnCasOp::Start(grpc::CompletionQueue* cq, void* tag) {
  const uint64_t mine = std::max<uint64_t>(1, (keys_.count - owner_ + owners_ - 1) / owners_);
  key_ = owner_ + owners_ * (rng_() % mine);
  const std::string key = keys_.Key(key_);
  req_.Clear();
  auto* cmp = req_.add_compare();
  cmp->set_key(key);
  cmp->set_target(etcdserverpb::Compare::MOD);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  auto it = mod_revision_.find(key_);
  cmp->set_mod_revision(it == mod_revision_.end() ? 0 : it->second);
  auto* put = req_.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value_);
  req_.add_failure()->mutable_request_range()->set_key(key);
  grpc::ClientContext* ctx = call_.NewContext(call_options_);
  call_.Finish(stub_->PrepareAsyncTxn(ctx, req_, cq), tag);
}

bool TxnCasOp::Step(bool) {
  kind_ = &kind_ok_;
  if (!call_.status().ok()) return true;
  const auto& resp = call_.response();
  if (resp.succeeded()) {
    mod_revision_[key_] = resp.header().revision();
  } else {
    kind_ = &kind_conflict_;
    const auto& kvs = resp.responses(0).response_range().kvs();
    mod_revision_[key_] = kvs.empty() ? 0 : kvs[0].mod_revision();
  }
  return true;
}

// ---- lease ----------------------------------------------------------------

LeaseOp::LeaseOp(std::shared_ptr<grpc::Channel> channel, int leases_per_client, int64_t ttl_seconds,
                 CallOptions call)
    : stub_(etcdserverpb::Lease::NewStub(channel)),
      leases_per_client_(std::max(1, leases_per_client)),
      ttl_seconds_(ttl_seconds),
      call_options_(call) {}

void LeaseOp::Start(grpc::CompletionQueue* cq, void* tag) {
  cq_ = cq;
  tag_ = tag;
  if (static_cast<int>(leases_.size()) < leases_per_client_) {
    phase_ = Phase::kGrant;
    kind_ = &kind_grant_;
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(ttl_seconds_);
    grpc::ClientContext* ctx = grant_.NewContext(call_options_);
    grant_.Finish(stub_->PrepareAsyncLeaseGrant(ctx, req, cq), tag);
    return;
  }
  kind_ = &kind_keepalive_;
  if (!stream_) {
    phase_ = Phase::kOpen;
    stream_ctx_ = std::make_unique<grpc::ClientContext>();
    stream_ = stub_->AsyncLeaseKeepAlive(stream_ctx_.get(), cq, tag);
    return;
  }
  Write();
}

void LeaseOp::Write() {
  phase_ = Phase::kWrite;
  ka_req_.set_id(leases_[next_keepalive_++ % leases_.size()]);
  stream_->Write(ka_req_, tag_);
}

bool LeaseOp::Step(bool ok) {
  switch (phase_) {
    case Phase::kGrant:
      status_ = grant_.status();
      if (status_.ok()) leases_.push_back(grant_.response().id());
      return true;
    case Phase::kOpen:
      if (!ok) break;
      Write();
      return false;
    case Phase::kWrite:
      if (!ok) break;
      phase_ = Phase::kRead;
      stream_->Read(&ka_resp_, tag_);
      return false;
    case Phase::kRead:
      if (!ok) break;
      status_ = ka_resp_.ttl() > 0 ? grpc::Status::OK
                                   : grpc::Status(grpc::StatusCode::NOT_FOUND,
                                                  "etcdserver: requested lease not found");
      return true;
    case Phase::kFinish:
      stream_.reset();
      return true;
  }
  // The stream broke: learn why, then open a new one on the next call.
  phase_ = Phase::kFinish;
  stream_->Finish(&status_, tag_);
  return false;
}

void LeaseOp::Cancel() {
  if (stream_) stream_ctx_->TryCancel();
}

// ---- mixed ----------------------------------------------------------------

MixedOp::MixedOp(std::vector<std::pair<std::unique_ptr<Op>, int>> weighted, uint64_t seed)
    : ops_(std::move(weighted)), rng_(seed) {
  for (const auto& [op, w] : ops_) total_weight_ += std::max(0, w);
}

void MixedOp::Start(grpc::CompletionQueue* cq, void* tag) {
  int pick = static_cast<int>(rng_() % static_cast<uint64_t>(std::max(1, total_weight_)));
  for (auto& [op, w] : ops_) {
    current_ = op.get();
    if (pick < w) break;
    pick -= w;
  }
  current_->Start(cq, tag);
}

void MixedOp::Cancel() {
  for (auto& [op, w] : ops_) op->Cancel();
}

}  // namespace ganglion::bench
