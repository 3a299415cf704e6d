#include "client/concurrency/stm.h"

namespace ganglion::client {

absl::StatusOr<std::optional<std::string>> StmTxn::Get(std::string_view key) {
  const std::string k(key);
  if (auto w = writes_.find(k); w != writes_.end()) return w->second.value;
  GetOptions options;
  options.revision = snapshot_revision_;
  absl::StatusOr<etcdserverpb::RangeResponse> got = client_.kv().Get(key, options);
  if (!got.ok()) return got.status();
  if (snapshot_revision_ == 0) snapshot_revision_ = got->header().revision();
  if (got->kvs().empty()) {
    read_mod_revs_.emplace(k, 0);
    return std::optional<std::string>();
  }
  read_mod_revs_.emplace(k, got->kvs(0).mod_revision());
  return std::optional<std::string>(got->kvs(0).value());
}

void StmTxn::Put(std::string_view key, std::string_view value, const PutOptions& options) {
  writes_[std::string(key)] = Write{std::string(value), options};
}

void StmTxn::Delete(std::string_view key) {
  writes_[std::string(key)] = Write{std::nullopt, {}};
}

Txn StmTxn::ToTxn() const {
  Txn txn;
  // An absent key compares as mod revision 0, so "still absent" is checked too.
  for (const auto& [key, mod_rev] : read_mod_revs_) txn.If(ModRevision(key) == mod_rev);
  for (const auto& [key, w] : writes_) {
    txn.Then(w.value.has_value() ? Op::Put(key, *w.value, w.options) : Op::Delete(key));
  }
  return txn;
}

absl::StatusOr<etcdserverpb::TxnResponse> RunStm(Client& client,
                                                 const std::function<absl::Status(StmTxn&)>& apply,
                                                 int attempts_max) {
  for (int attempt = 0; attempt < attempts_max; ++attempt) {
    StmTxn txn(client);
    absl::Status applied = apply(txn);
    // A snapshot compacted away mid-attempt is a conflict like any other.
    if (absl::IsOutOfRange(applied)) continue;
    if (!applied.ok()) return applied;
    absl::StatusOr<etcdserverpb::TxnResponse> resp = client.kv().Commit(txn.ToTxn());
    if (!resp.ok()) return resp.status();
    if (resp->succeeded()) return resp;
  }
  return absl::AbortedError("client: transaction conflicted on every attempt");
}

}  // namespace ganglion::client
