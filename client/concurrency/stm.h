// Optimistic read-modify-write: `apply` reads keys and buffers writes through
// an StmTxn; the writes commit only if no key read has changed since, else
// `apply` runs again on fresh data. Reads of one attempt see one snapshot
// (the revision of its first read). `apply` must have no side effects other
// than through the StmTxn: it may run several times.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"

namespace ganglion::client {

class StmTxn {
 public:
  explicit StmTxn(Client& client) : client_(client) {}

  // The key's value at this attempt's snapshot (or as written earlier in this
  // attempt); nullopt if absent.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key);
  void Put(std::string_view key, std::string_view value, const PutOptions& options = {});
  void Delete(std::string_view key);

 private:
  friend absl::StatusOr<etcdserverpb::TxnResponse> RunStm(
      Client&, const std::function<absl::Status(StmTxn&)>&, int);
  struct Write {
    std::optional<std::string> value;  // nullopt: delete
    PutOptions options;
  };
  Txn ToTxn() const;

  Client& client_;
  int64_t snapshot_revision_ = 0;                 // 0 until the first read
  std::map<std::string, int64_t> read_mod_revs_;  // key -> mod revision seen (0: absent)
  std::map<std::string, Write> writes_;
};

// Runs `apply` until its writes commit, at most `attempts_max` times
// (Aborted when every attempt conflicted). An error from `apply` ends it.
absl::StatusOr<etcdserverpb::TxnResponse> RunStm(Client& client,
                                                 const std::function<absl::Status(StmTxn&)>& apply,
                                                 int attempts_max = 16);

}  // namespace ganglion::client
