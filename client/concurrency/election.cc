#include "client/concurrency/election.h"

#include "absl/strings/str_format.h"
#include "client/concurrency/mutex.h"

namespace ganglion::client {

namespace {
std::string WithSlash(std::string_view prefix) {
  std::string p(prefix);
  if (p.empty() || p.back() != '/') p.push_back('/');
  return p;
}

absl::StatusOr<etcdserverpb::RangeResponse> FirstCandidate(Client& client,
                                                           const std::string& prefix) {
  GetOptions first;
  first.prefix = true;
  first.sort_target = etcdserverpb::RangeRequest::CREATE;
  first.sort_order = etcdserverpb::RangeRequest::ASCEND;
  first.limit = 1;
  return client.kv().Get(prefix, first);
}
}  // namespace

Election::Election(Session& session, std::string_view prefix)
    : session_(session),
      prefix_(WithSlash(prefix)),
      key_(absl::StrFormat("%s%x", prefix_, session.lease_id())) {}

absl::Status Election::Campaign(std::string_view value, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  PutOptions put;
  put.lease = session_.lease_id();
  Txn txn;
  txn.If(CreateRevision(key_) == 0).Then(Op::Put(key_, value, put)).Else(Op::Get(key_));
  absl::StatusOr<etcdserverpb::TxnResponse> resp = session_.client().kv().Commit(txn);
  if (!resp.ok()) return resp.status();
  if (resp->succeeded()) {
    revision_ = resp->header().revision();
  } else {
    const auto& mine = resp->responses(0).response_range();
    if (mine.kvs().empty()) return absl::AbortedError("client: candidate key vanished");
    revision_ = mine.kvs(0).create_revision();
    if (mine.kvs(0).value() != value) {
      absl::Status proclaimed = Proclaim(value);
      if (!proclaimed.ok()) return proclaimed;
    }
  }
  absl::Status waited = WaitDeletes(session_.client(), prefix_, revision_, deadline);
  if (!waited.ok()) {
    (void)Resign();
    return waited;
  }
  return absl::OkStatus();
}

absl::Status Election::Proclaim(std::string_view value) {
  if (revision_ == 0) return absl::FailedPreconditionError("election: not leader");
  PutOptions put;
  put.lease = session_.lease_id();
  Txn txn;
  txn.If(CreateRevision(key_) == revision_).Then(Op::Put(key_, value, put));
  absl::StatusOr<etcdserverpb::TxnResponse> resp = session_.client().kv().Commit(txn);
  if (!resp.ok()) return resp.status();
  if (!resp->succeeded()) {
    revision_ = 0;
    return absl::FailedPreconditionError("election: not leader");
  }
  return absl::OkStatus();
}

absl::Status Election::Resign() {
  if (revision_ == 0) return absl::OkStatus();
  Txn txn;
  txn.If(CreateRevision(key_) == revision_).Then(Op::Delete(key_));
  absl::StatusOr<etcdserverpb::TxnResponse> resp = session_.client().kv().Commit(txn);
  if (!resp.ok()) return resp.status();
  revision_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<mvccpb::KeyValue> Election::Leader() {
  absl::StatusOr<etcdserverpb::RangeResponse> first = FirstCandidate(session_.client(), prefix_);
  if (!first.ok()) return first.status();
  if (first->kvs().empty()) return absl::NotFoundError("election: no leader");
  return first->kvs(0);
}

std::unique_ptr<ElectionObserver> Election::Observe() {
  return std::make_unique<ElectionObserver>(session_.client(), prefix_);
}

absl::StatusOr<mvccpb::KeyValue> ElectionObserver::Next(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  if (watcher_ == nullptr) {
    // Watch first, then read: a change after the read is then never missed.
    WatchOptions options;
    options.prefix = true;
    absl::StatusOr<std::unique_ptr<Watcher>> w = client_.watch().Watch(prefix_, options);
    if (!w.ok()) return w.status();
    watcher_ = *std::move(w);
  }
  while (true) {
    absl::StatusOr<etcdserverpb::RangeResponse> first = FirstCandidate(client_, prefix_);
    if (!first.ok()) return first.status();
    if (!first->kvs().empty()) {
      const mvccpb::KeyValue& kv = first->kvs(0);
      if (kv.key() != last_key_ || kv.mod_revision() != last_mod_revision_) {
        last_key_ = kv.key();
        last_mod_revision_ = kv.mod_revision();
        return kv;
      }
    }
    // Wait for any change under the prefix, then look again.
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("client: no new leader");
    absl::StatusOr<WatchBatch> batch = watcher_->Next(left);
    if (!batch.ok()) {
      if (IsCompacted(batch.status())) {
        watcher_.reset();
        return Next(deadline - absl::Now());
      }
      return batch.status();
    }
  }
}

}  // namespace ganglion::client
