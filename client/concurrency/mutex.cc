#include "client/concurrency/mutex.h"

#include "absl/strings/str_format.h"

namespace ganglion::client {

namespace {
std::string WithSlash(std::string_view prefix) {
  std::string p(prefix);
  if (p.empty() || p.back() != '/') p.push_back('/');
  return p;
}
}  // namespace

absl::Status WaitDeletes(Client& client, const std::string& prefix, int64_t revision,
                         absl::Time deadline) {
  // Each round waits for one predecessor; there are finitely many, since
  // keys created later than `revision` are never waited for.
  while (true) {
    GetOptions newest_before;
    newest_before.prefix = true;
    newest_before.max_create_revision = revision - 1;
    newest_before.sort_target = etcdserverpb::RangeRequest::CREATE;
    newest_before.sort_order = etcdserverpb::RangeRequest::DESCEND;
    newest_before.limit = 1;
    absl::StatusOr<etcdserverpb::RangeResponse> got = client.kv().Get(prefix, newest_before);
    if (!got.ok()) return got.status();
    if (got->kvs().empty()) return absl::OkStatus();
    const std::string predecessor = got->kvs(0).key();
    WatchOptions options;
    options.start_revision = got->header().revision() + 1;
    options.no_put = true;
    absl::StatusOr<std::unique_ptr<Watcher>> watcher = client.watch().Watch(predecessor, options);
    if (!watcher.ok()) return watcher.status();
    bool deleted = false;
    while (!deleted) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration())
        return absl::DeadlineExceededError("client: wait timed out");
      absl::StatusOr<WatchBatch> batch = (*watcher)->Next(std::min(left, absl::Seconds(1)));
      if (!batch.ok()) {
        if (batch.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
        if (IsCompacted(batch.status())) break;  // re-read: the key may be gone
        return batch.status();
      }
      for (const mvccpb::Event& e : batch->events) {
        if (e.type() == mvccpb::Event::DELETE) deleted = true;
      }
    }
  }
}

Mutex::Mutex(Session& session, std::string_view prefix)
    : session_(session),
      prefix_(WithSlash(prefix)),
      key_(absl::StrFormat("%s%x", prefix_, session.lease_id())) {}

absl::StatusOr<int64_t> Mutex::Enqueue() {
  GetOptions first;
  first.prefix = true;
  first.sort_target = etcdserverpb::RangeRequest::CREATE;
  first.sort_order = etcdserverpb::RangeRequest::ASCEND;
  first.limit = 1;
  PutOptions put;
  put.lease = session_.lease_id();
  Txn txn;
  txn.If(CreateRevision(key_) == 0)
      .Then(Op::Put(key_, "", put))
      .Then(Op::Get(prefix_, first))
      .Else(Op::Get(key_))
      .Else(Op::Get(prefix_, first));
  absl::StatusOr<etcdserverpb::TxnResponse> resp = session_.client().kv().Commit(txn);
  if (!resp.ok()) return resp.status();
  if (resp->succeeded()) {
    token_ = resp->header().revision();
  } else {
    const auto& mine = resp->responses(0).response_range();
    if (mine.kvs().empty()) return absl::AbortedError("client: lock key vanished");
    token_ = mine.kvs(0).create_revision();
  }
  const auto& owner = resp->responses(1).response_range();
  return owner.kvs().empty() ? token_ : owner.kvs(0).create_revision();
}

absl::Status Mutex::Lock(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<int64_t> owner = Enqueue();
  if (!owner.ok()) return owner.status();
  if (*owner != token_) {
    absl::Status waited = WaitDeletes(session_.client(), prefix_, token_, deadline);
    if (!waited.ok()) {
      (void)Unlock();
      return waited;
    }
  }
  // The session may have expired while we waited, taking our key with it.
  absl::StatusOr<etcdserverpb::RangeResponse> mine = session_.client().kv().Get(key_);
  if (!mine.ok()) return mine.status();
  if (mine->kvs().empty() || mine->kvs(0).create_revision() != token_) {
    token_ = 0;
    return absl::AbortedError("client: session expired before the lock was acquired");
  }
  return absl::OkStatus();
}

absl::Status Mutex::TryLock() {
  absl::StatusOr<int64_t> owner = Enqueue();
  if (!owner.ok()) return owner.status();
  if (*owner == token_) return absl::OkStatus();
  (void)Unlock();
  return absl::FailedPreconditionError("client: mutex is locked by another session");
}

absl::Status Mutex::Unlock() {
  absl::StatusOr<etcdserverpb::DeleteRangeResponse> deleted = session_.client().kv().Delete(key_);
  token_ = 0;
  return deleted.ok() ? absl::OkStatus() : deleted.status();
}

}  // namespace ganglion::client
