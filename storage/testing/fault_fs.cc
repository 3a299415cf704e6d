#include "storage/testing/fault_fs.h"

#include <filesystem>

namespace ganglion::storage::testing {

namespace {
rocksdb::IOStatus Crashed() {
  return rocksdb::IOStatus::IOError("simulated crash: disk is frozen");
}

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile>&& t, std::string fname, FaultFs* fs)
      : FSWritableFileOwnerWrapper(std::move(t)), fname_(std::move(fname)), fs_(fs) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_->crashed()) return Crashed();
    auto s = target()->Append(data, o, dbg);
    if (s.ok()) fs_->OnWrite(fname_, target()->GetFileSize(o, dbg));
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_->crashed()) return Crashed();
    auto s = target()->Append(data, o, v, dbg);
    if (s.ok()) fs_->OnWrite(fname_, target()->GetFileSize(o, dbg));
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_->crashed()) return Crashed();
    auto s = target()->PositionedAppend(data, offset, o, dbg);
    if (s.ok()) fs_->OnWrite(fname_, offset + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_->crashed()) return Crashed();
    auto s = target()->PositionedAppend(data, offset, o, v, dbg);
    if (s.ok()) fs_->OnWrite(fname_, offset + data.size());
    return s;
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
    if (fs_->crashed()) return Crashed();
    auto s = target()->Truncate(size, o, dbg);
    if (s.ok()) fs_->OnTruncate(fname_, size);
    return s;
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (fs_->crashed()) return Crashed();
    return target()->Flush(o, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    fs_->WaitWhileSyncsHeld();
    if (fs_->crashed()) return Crashed();
    auto s = target()->Sync(o, dbg);
    if (s.ok()) fs_->OnSync(fname_);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    fs_->WaitWhileSyncsHeld();
    if (fs_->crashed()) return Crashed();
    auto s = target()->Fsync(o, dbg);
    if (s.ok()) fs_->OnSync(fname_);
    return s;
  }
  // A range sync only starts write-back; it promises nothing.
  rocksdb::IOStatus RangeSync(uint64_t, uint64_t, const rocksdb::IOOptions&,
                              rocksdb::IODebugContext*) override {
    return fs_->crashed() ? Crashed() : rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    // Closing does not make data durable; let the descriptor go either way.
    auto s = target()->Close(o, dbg);
    return fs_->crashed() ? Crashed() : s;
  }

 private:
  std::string fname_;
  FaultFs* fs_;
};
}  // namespace

FaultFs::FaultFs(const std::shared_ptr<rocksdb::FileSystem>& base) : FileSystemWrapper(base) {}

bool FaultFs::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

void FaultFs::OnWrite(const std::string& fname, uint64_t end_offset) {
  std::lock_guard lock(mu_);
  auto& f = files_[fname];
  f.size = std::max(f.size, end_offset);
}

void FaultFs::OnTruncate(const std::string& fname, uint64_t size) {
  std::lock_guard lock(mu_);
  auto& f = files_[fname];
  f.size = size;
  f.synced = std::min(f.synced, size);
}

void FaultFs::HoldSyncs() {
  std::lock_guard lock(mu_);
  syncs_held_ = true;
}

void FaultFs::ReleaseSyncs() {
  {
    std::lock_guard lock(mu_);
    syncs_held_ = false;
  }
  syncs_released_.notify_all();
}

int FaultFs::syncs_waiting() const {
  std::lock_guard lock(mu_);
  return syncs_waiting_;
}

void FaultFs::WaitWhileSyncsHeld() {
  std::unique_lock lock(mu_);
  syncs_waiting_++;
  syncs_released_.wait(lock, [&] { return !syncs_held_; });
  syncs_waiting_--;
}

void FaultFs::OnSync(const std::string& fname) {
  std::lock_guard lock(mu_);
  auto& f = files_[fname];
  f.synced = f.size;
}

rocksdb::IOStatus FaultFs::NewWritableFile(const std::string& fname,
                                           const rocksdb::FileOptions& opts,
                                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                                           rocksdb::IODebugContext* dbg) {
  if (crashed()) return Crashed();
  std::unique_ptr<rocksdb::FSWritableFile> f;
  auto s = target()->NewWritableFile(fname, opts, &f, dbg);
  if (!s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    files_[fname] = FileState{};
  }
  *result = std::make_unique<FaultWritableFile>(std::move(f), fname, this);
  return s;
}

rocksdb::IOStatus FaultFs::ReopenWritableFile(const std::string& fname,
                                              const rocksdb::FileOptions& opts,
                                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                                              rocksdb::IODebugContext* dbg) {
  if (crashed()) return Crashed();
  std::unique_ptr<rocksdb::FSWritableFile> f;
  auto s = target()->ReopenWritableFile(fname, opts, &f, dbg);
  if (!s.ok()) return s;
  {
    // What is already there survived (or predates) the last crash.
    std::lock_guard lock(mu_);
    uint64_t size = f->GetFileSize(rocksdb::IOOptions(), dbg);
    files_[fname] = FileState{size, size};
  }
  *result = std::make_unique<FaultWritableFile>(std::move(f), fname, this);
  return s;
}

rocksdb::IOStatus FaultFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                             const rocksdb::FileOptions& opts,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             rocksdb::IODebugContext* dbg) {
  if (crashed()) return Crashed();
  std::unique_ptr<rocksdb::FSWritableFile> f;
  auto s = target()->ReuseWritableFile(fname, old_fname, opts, &f, dbg);
  if (!s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    files_.erase(old_fname);
    files_[fname] = FileState{};
  }
  *result = std::make_unique<FaultWritableFile>(std::move(f), fname, this);
  return s;
}

rocksdb::IOStatus FaultFs::RenameFile(const std::string& src, const std::string& target_name,
                                      const rocksdb::IOOptions& opts,
                                      rocksdb::IODebugContext* dbg) {
  if (crashed()) return Crashed();
  auto s = target()->RenameFile(src, target_name, opts, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    auto it = files_.find(src);
    if (it != files_.end()) {
      files_[target_name] = it->second;
      files_.erase(src);
    } else {
      files_.erase(target_name);
    }
  }
  return s;
}

rocksdb::IOStatus FaultFs::DeleteFile(const std::string& fname, const rocksdb::IOOptions& opts,
                                      rocksdb::IODebugContext* dbg) {
  if (crashed()) return Crashed();
  auto s = target()->DeleteFile(fname, opts, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    files_.erase(fname);
  }
  return s;
}

void FaultFs::Crash() {
  std::lock_guard lock(mu_);
  crashed_ = true;
}

void FaultFs::DropUnsyncedDataAndRestart() {
  std::lock_guard lock(mu_);
  for (auto& [name, f] : files_) {
    std::error_code ec;
    if (std::filesystem::exists(name, ec) && f.synced < std::filesystem::file_size(name, ec)) {
      std::filesystem::resize_file(name, f.synced, ec);
    }
    f.size = f.synced;
  }
  crashed_ = false;
}

FaultEnv::FaultEnv()
    : fs(std::make_shared<FaultFs>(rocksdb::FileSystem::Default())),
      env(rocksdb::NewCompositeEnv(fs)) {}

}  // namespace ganglion::storage::testing
