// A distributed lock, built client-side on keys so it works the same on etcd
// and ganglion: each contender puts prefix/<lease id in hex> under its
// session's lease; the contender whose key has the lowest create revision
// holds the lock; the others wait for the deletion of the key just before
// theirs. The holder's create revision is its fencing token: guard every
// write with `IsOwner()` (or compare the token) so a holder that lost its
// session cannot overwrite its successor. It must never report the lock held
// when the key that holds it is gone.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/concurrency/session.h"
#include "client/ops.h"

namespace ganglion::client {

class Mutex {
 public:
  Mutex(Session& session, std::string_view prefix);

  // Blocks until the lock is held, or `timeout` passes (DeadlineExceeded;
  // the queue place is given up).
  absl::Status Lock(absl::Duration timeout = absl::InfiniteDuration());
  // Takes the lock only if nobody holds it (FailedPrecondition otherwise).
  absl::Status TryLock();
  absl::Status Unlock();

  // Valid while held: the lock key's create revision.
  int64_t fencing_token() const { return token_; }
  const std::string& key() const { return key_; }
  // Holds inside a transaction only while this holder still holds the lock.
  Compare IsOwner() const { return CreateRevision(key_) == token_; }

 private:
  // Puts our key if absent; sets token_; returns the current owner's create revision.
  absl::StatusOr<int64_t> Enqueue();

  Session& session_;
  const std::string prefix_;  // ends with '/'
  const std::string key_;
  int64_t token_ = 0;
};

// Blocks until every key under `prefix` created before `revision` is deleted,
// bounded by `deadline`. Shared by Mutex and Election.
absl::Status WaitDeletes(Client& client, const std::string& prefix, int64_t revision,
                         absl::Time deadline);

}  // namespace ganglion::client
