// A RocksDB FileSystem for crash tests: it forwards to the real one, tracks
// how much of every file was synced, and on Crash() freezes the disk and
// drops every byte written after each file's last Sync/Fsync, as a power
// loss would. Test-only.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace ganglion::storage::testing {

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(const std::shared_ptr<rocksdb::FileSystem>& base);
  const char* Name() const override { return "GanglionFaultFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& opts,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& opts,
                               rocksdb::IODebugContext* dbg) override;

  // Freezes the disk: every later write, sync, rename or delete fails, so a
  // database torn down after the "crash" cannot change what survives.
  void Crash();
  // Truncates every tracked file to what was synced before Crash(), then
  // unfreezes the disk so the database can be reopened.
  void DropUnsyncedDataAndRestart();

  // A stalled disk: from HoldSyncs() until ReleaseSyncs(), every Sync and
  // Fsync waits, as on a device that takes that long to make data durable.
  void HoldSyncs();
  void ReleaseSyncs();
  // How many syncs are waiting for ReleaseSyncs() now.
  int syncs_waiting() const;

  // Called by the tracked files.
  void WaitWhileSyncsHeld();
  bool crashed() const;
  void OnWrite(const std::string& fname, uint64_t end_offset);
  void OnTruncate(const std::string& fname, uint64_t size);
  void OnSync(const std::string& fname);

 private:
  struct FileState {
    uint64_t size = 0;
    uint64_t synced = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, FileState> files_;  // guarded by mu_
  bool crashed_ = false;                    // guarded by mu_
  bool syncs_held_ = false;                 // guarded by mu_
  int syncs_waiting_ = 0;                   // guarded by mu_
  std::condition_variable syncs_released_;
};

// An Env over a FaultFs, for RocksDB's Options::env.
struct FaultEnv {
  FaultEnv();
  std::shared_ptr<FaultFs> fs;
  std::unique_ptr<rocksdb::Env> env;
};

}  // namespace ganglion::storage::testing
