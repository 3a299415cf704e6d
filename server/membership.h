// The members table: every member's id, name, peer and client URLs and
// learner flag, as the apply loop built it from the log (so every member has
// the same table at the same index), plus the ids ever removed (a removed
// member may never come back under its id). The apply loop is the only
// writer and persists each change as a meta record in the same batch as the
// entry that made it; anyone may read.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/peer.pb.h"
#include "storage/state_store.h"

namespace ganglion::server {

class Membership {
 public:
  // Reads the table from the state store's meta records.
  absl::Status Load(const storage::StateStore& store);

  std::vector<peer::Member> List() const;  // by id
  std::optional<peer::Member> Get(uint64_t id) const;
  bool IsRemoved(uint64_t id) const;
  size_t size() const;

  // Changes made by the apply loop; each returns the records to write in the
  // applying batch.
  std::vector<storage::MetaWrite> Put(const peer::Member& m);
  std::vector<storage::MetaWrite> Remove(uint64_t id);

  // The checks a proposer makes before proposing a change (every member
  // applies whatever committed; these keep a client from committing a bad
  // one). `active` says which voters the leader heard from recently.
  absl::Status CheckAdd(const peer::Member& m) const;
  absl::Status CheckRemove(uint64_t id, const std::map<uint64_t, bool>& active) const;
  absl::Status CheckPromote(uint64_t id) const;
  absl::Status CheckUpdate(uint64_t id, const std::vector<std::string>& peer_urls) const;

  // etcd caps learners at one.
  static constexpr size_t kLearnersMax = 1;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, peer::Member> members_;  // guarded by mu_
  std::set<uint64_t> removed_;                // guarded by mu_
};

}  // namespace ganglion::server
