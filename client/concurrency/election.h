// Leader election on keys, the same way on etcd and ganglion: each candidate
// puts prefix/<lease id in hex> with its value under its session's lease; the
// key with the lowest create revision is the leader. Campaign waits until
// every earlier candidate's key is gone; Proclaim changes the leader's value;
// Resign deletes the key; Observe follows the leader. It must never let a
// candidate that is not the leader proclaim (the write is guarded by the
// key's create revision).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/concurrency/session.h"

namespace ganglion::client {

// Follows who leads an election. Each Next() returns the leader's key-value
// when it differs (key or value revision) from the last one returned.
class ElectionObserver {
 public:
  ElectionObserver(Client& client, std::string prefix)
      : client_(client), prefix_(std::move(prefix)) {}
  // NotFound never: while nobody leads, Next waits (DeadlineExceeded at timeout).
  absl::StatusOr<mvccpb::KeyValue> Next(absl::Duration timeout);

 private:
  Client& client_;
  const std::string prefix_;
  std::unique_ptr<Watcher> watcher_;  // created on the first Next
  std::string last_key_;
  int64_t last_mod_revision_ = 0;
};

class Election {
 public:
  Election(Session& session, std::string_view prefix);

  // Blocks until this candidate leads (or `timeout`: DeadlineExceeded, and
  // the candidacy is withdrawn).
  absl::Status Campaign(std::string_view value, absl::Duration timeout = absl::InfiniteDuration());
  // Sets the leader's value. FailedPrecondition "election: not leader" unless
  // this candidate leads.
  absl::Status Proclaim(std::string_view value);
  // Steps down (deletes the key); harmless when not leading.
  absl::Status Resign();
  // The current leader's key-value; NotFound "election: no leader" if none.
  absl::StatusOr<mvccpb::KeyValue> Leader();
  std::unique_ptr<ElectionObserver> Observe();

  const std::string& key() const { return key_; }
  int64_t revision() const { return revision_; }  // our key's create revision while leading

 private:
  Session& session_;
  const std::string prefix_;  // ends with '/'
  const std::string key_;
  int64_t revision_ = 0;
};

}  // namespace ganglion::client
