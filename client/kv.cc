#include "client/kv.h"

namespace ganglion::client {

using etcdserverpb::CompactionRequest;
using etcdserverpb::CompactionResponse;
using etcdserverpb::DeleteRangeRequest;
using etcdserverpb::DeleteRangeResponse;
using etcdserverpb::PutRequest;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;
using Done = std::function<void(grpc::Status)>;

void KvClient::GetAsync(std::string_view key, const GetOptions& options,
                        Callback<RangeResponse> done) {
  auto req = std::make_shared<RangeRequest>(MakeRangeRequest(key, options));
  CallUnary<RangeResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, RangeResponse* resp, Done d) {
        s.kv->async()->Range(ctx, req.get(), resp, std::move(d));
      },
      std::move(done));
}

void KvClient::PutAsync(std::string_view key, std::string_view value, const PutOptions& options,
                        Callback<PutResponse> done) {
  auto req = std::make_shared<PutRequest>(MakePutRequest(key, value, options));
  CallUnary<PutResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, PutResponse* resp, Done d) {
        s.kv->async()->Put(ctx, req.get(), resp, std::move(d));
      },
      std::move(done));
}

void KvClient::DeleteAsync(std::string_view key, const DeleteOptions& options,
                           Callback<DeleteRangeResponse> done) {
  auto req = std::make_shared<DeleteRangeRequest>(MakeDeleteRequest(key, options));
  CallUnary<DeleteRangeResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, DeleteRangeResponse* resp, Done d) {
        s.kv->async()->DeleteRange(ctx, req.get(), resp, std::move(d));
      },
      std::move(done));
}

void KvClient::CommitAsync(const Txn& txn, Callback<TxnResponse> done) {
  auto req = std::make_shared<TxnRequest>(txn.ToProto());
  CallUnary<TxnResponse>(
      endpoints_, txn.read_only() ? Idempotency::kIdempotent : Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, TxnResponse* resp, Done d) {
        s.kv->async()->Txn(ctx, req.get(), resp, std::move(d));
      },
      std::move(done));
}

void KvClient::CompactAsync(int64_t revision, bool physical, Callback<CompactionResponse> done) {
  auto req = std::make_shared<CompactionRequest>();
  req->set_revision(revision);
  req->set_physical(physical);
  // Compacting to the same revision twice is harmless (the second answers
  // "already compacted"), so it is retried like a read.
  CallUnary<CompactionResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, CompactionResponse* resp, Done d) {
        s.kv->async()->Compact(ctx, req.get(), resp, std::move(d));
      },
      std::move(done));
}

// The future and blocking forms, all alike.
Future<RangeResponse> KvClient::GetAsync(std::string_view key, const GetOptions& options) {
  auto [callback, future] = MakeFutureCallback<RangeResponse>();
  GetAsync(key, options, std::move(callback));
  return std::move(future);
}
absl::StatusOr<RangeResponse> KvClient::Get(std::string_view key, const GetOptions& options) {
  return GetAsync(key, options).get();
}

Future<PutResponse> KvClient::PutAsync(std::string_view key, std::string_view value,
                                       const PutOptions& options) {
  auto [callback, future] = MakeFutureCallback<PutResponse>();
  PutAsync(key, value, options, std::move(callback));
  return std::move(future);
}
absl::StatusOr<PutResponse> KvClient::Put(std::string_view key, std::string_view value,
                                          const PutOptions& options) {
  return PutAsync(key, value, options).get();
}

Future<DeleteRangeResponse> KvClient::DeleteAsync(std::string_view key,
                                                  const DeleteOptions& options) {
  auto [callback, future] = MakeFutureCallback<DeleteRangeResponse>();
  DeleteAsync(key, options, std::move(callback));
  return std::move(future);
}
absl::StatusOr<DeleteRangeResponse> KvClient::Delete(std::string_view key,
                                                     const DeleteOptions& options) {
  return DeleteAsync(key, options).get();
}

Future<TxnResponse> KvClient::CommitAsync(const Txn& txn) {
  auto [callback, future] = MakeFutureCallback<TxnResponse>();
  CommitAsync(txn, std::move(callback));
  return std::move(future);
}
absl::StatusOr<TxnResponse> KvClient::Commit(const Txn& txn) {
  return CommitAsync(txn).get();
}

Future<CompactionResponse> KvClient::CompactAsync(int64_t revision, bool physical) {
  auto [callback, future] = MakeFutureCallback<CompactionResponse>();
  CompactAsync(revision, physical, std::move(callback));
  return std::move(future);
}
absl::StatusOr<CompactionResponse> KvClient::Compact(int64_t revision, bool physical) {
  return CompactAsync(revision, physical).get();
}

}  // namespace ganglion::client
