// Seeding a data dir from a snapshot file (`ganglion --restore FILE`).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/server.h"
#include "server/snapshot_file.h"

namespace ganglion::server {

namespace fs = std::filesystem;

absl::Status Server::RestoreDataDir(const ServerConfig& config, const std::string& snapshot_file) {
  std::error_code ec;
  if (fs::exists(config.data_dir, ec) && !fs::is_empty(config.data_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data-dir \"", config.data_dir, "\" exists; restore needs a new one"));
  }
  if (!config.IsNewCluster()) {
    return absl::InvalidArgumentError(
        "--restore seeds a new cluster: use --initial-cluster-state new");
  }
  fs::create_directories(config.data_dir + "/snap", ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", config.data_dir, ": ", ec.message()));
  const std::string state_dir = config.data_dir + "/state";
  if (auto s = UnpackSnapshot(snapshot_file, state_dir); !s.ok()) return s;

  // The snapshot's keys and revisions stay; its members, removed ids and
  // alarms belonged to the old cluster. The cleanup is one more applied
  // index, which becomes the new log's snapshot index.
  uint64_t index = 0;
  {
    auto st = storage::StateStore::Open(state_dir, {.background_compaction = false});
    if (!st.ok()) return st.status();
    std::vector<storage::MetaWrite> cleanup;
    for (const char* prefix : {"member/", "removed/", "alarm/"}) {
      auto records = (*st)->ReadMeta(prefix);
      if (!records.ok()) return records.status();
      for (const auto& [key, value] : *records) cleanup.push_back({key, std::nullopt});
    }
    index = (*st)->applied_index() + 1;
    if (auto r = (*st)->Apply({}, index, cleanup); !r.ok()) return r.status();
    if (auto s = (*st)->Checkpoint(absl::StrFormat("%s/snap/%016x", config.data_dir, index));
        !s.ok()) {
      return s;
    }
  }

  // The new log: a snapshot at `index` holding the new voters, then the
  // same bootstrap entries a new cluster writes, committed. Every member
  // restoring the same file writes the same log.
  auto log = storage::RaftLogStore::Open(config.data_dir + "/raft", {});
  if (!log.ok()) return log.status();
  raft::Snapshot snap;
  snap.metadata.index = index;
  snap.metadata.term = 1;
  for (const InitialMember& im : config.initial_members) {
    snap.metadata.conf_state.voters.push_back(im.id);
  }
  std::vector<raft::Entry> entries = BootstrapEntries(config, index + 1);
  raft::HardState hs;
  hs.term = 1;
  hs.commit = index + entries.size();
  if (auto s = (*log)->Save(hs, entries, snap); !s.ok()) return s;

  const std::string identity = absl::StrFormat("%x %x new\n", config.member_id, config.cluster_id);
  if (auto s = WriteFileDurably(config.data_dir + "/identity", identity); !s.ok()) return s;
  spdlog::info("event=restored data_dir={} from={} snapshot_index={} members={}", config.data_dir,
               snapshot_file, index, config.initial_members.size());
  return absl::OkStatus();
}

}  // namespace ganglion::server
