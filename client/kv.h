// Reads and writes of the key space: Get (every Range option), Put, Delete,
// transactions and compaction, each as a blocking call and an asynchronous
// one. Calls fail over between members (see endpoints.h); a write is never
// sent twice unless it cannot have reached a member the first time.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "client/async.h"
#include "client/endpoints.h"
#include "client/ops.h"

namespace ganglion::client {

class KvClient {
 public:
  explicit KvClient(std::shared_ptr<EndpointSet> endpoints) : endpoints_(std::move(endpoints)) {}

  absl::StatusOr<etcdserverpb::RangeResponse> Get(std::string_view key,
                                                  const GetOptions& options = {});
  void GetAsync(std::string_view key, const GetOptions& options,
                Callback<etcdserverpb::RangeResponse> done);
  Future<etcdserverpb::RangeResponse> GetAsync(std::string_view key,
                                               const GetOptions& options = {});

  absl::StatusOr<etcdserverpb::PutResponse> Put(std::string_view key, std::string_view value,
                                                const PutOptions& options = {});
  void PutAsync(std::string_view key, std::string_view value, const PutOptions& options,
                Callback<etcdserverpb::PutResponse> done);
  Future<etcdserverpb::PutResponse> PutAsync(std::string_view key, std::string_view value,
                                             const PutOptions& options = {});

  absl::StatusOr<etcdserverpb::DeleteRangeResponse> Delete(std::string_view key,
                                                           const DeleteOptions& options = {});
  void DeleteAsync(std::string_view key, const DeleteOptions& options,
                   Callback<etcdserverpb::DeleteRangeResponse> done);
  Future<etcdserverpb::DeleteRangeResponse> DeleteAsync(std::string_view key,
                                                        const DeleteOptions& options = {});

  // A read-only transaction is retried like a Get; any other like a Put.
  absl::StatusOr<etcdserverpb::TxnResponse> Commit(const Txn& txn);
  void CommitAsync(const Txn& txn, Callback<etcdserverpb::TxnResponse> done);
  Future<etcdserverpb::TxnResponse> CommitAsync(const Txn& txn);

  // Discards history before `revision`. `physical`: answer only once the
  // compaction has been applied to the store.
  absl::StatusOr<etcdserverpb::CompactionResponse> Compact(int64_t revision, bool physical = false);
  void CompactAsync(int64_t revision, bool physical,
                    Callback<etcdserverpb::CompactionResponse> done);
  Future<etcdserverpb::CompactionResponse> CompactAsync(int64_t revision, bool physical = false);

 private:
  std::shared_ptr<EndpointSet> endpoints_;
};

}  // namespace ganglion::client
