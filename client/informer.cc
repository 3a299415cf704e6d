#include "client/informer.h"

namespace ganglion::client {

Informer::Informer(Client& client, std::string prefix, InformerHandlers handlers,
                   size_t queue_responses_max)
    : client_(client),
      prefix_(std::move(prefix)),
      handlers_(std::move(handlers)),
      queue_responses_max_(queue_responses_max) {}

Informer::~Informer() {
  Stop();
}

absl::Status Informer::Start() {
  if (thread_.joinable()) return absl::FailedPreconditionError("client: informer already started");
  thread_ = std::thread([this] { Run(); });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return first_list_done_; });
  return first_list_;
}

void Informer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Informer::synced_revision() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_revision_;
}

bool Informer::WaitForRevision(int64_t revision, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (synced_revision_ < revision) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    // A quiet prefix sends no events; a progress notification moves the
    // synced revision up to the store's.
    lock.unlock();
    (void)client_.watch().RequestProgress();
    lock.lock();
    cv_.wait_until(lock, absl::ToChronoTime(std::min(deadline, now + absl::Milliseconds(200))),
                   [&] { return synced_revision_ >= revision; });
  }
  return true;
}

std::optional<mvccpb::KeyValue> Informer::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, mvccpb::KeyValue> Informer::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_;
}

int Informer::relists() const {
  std::lock_guard<std::mutex> lock(mu_);
  return relists_;
}

void Informer::SetSynced(int64_t revision) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (revision > synced_revision_) synced_revision_ = revision;
  }
  cv_.notify_all();
}

absl::Status Informer::List() {
  watcher_.reset();
  GetOptions all;
  all.prefix = true;
  absl::StatusOr<etcdserverpb::RangeResponse> listed = client_.kv().Get(prefix_, all);
  if (!listed.ok()) return listed.status();
  std::map<std::string, mvccpb::KeyValue> fresh;
  for (const mvccpb::KeyValue& kv : listed->kvs()) fresh.emplace(kv.key(), kv);

  // The difference, in key order, before the cache takes the new state.
  std::map<std::string, mvccpb::KeyValue> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = cache_;
  }
  for (const auto& [key, kv] : old) {
    if (!fresh.contains(key) && handlers_.on_delete) handlers_.on_delete(kv);
  }
  for (const auto& [key, kv] : fresh) {
    auto it = old.find(key);
    if (it == old.end()) {
      if (handlers_.on_add) handlers_.on_add(kv);
    } else if (it->second.mod_revision() != kv.mod_revision()) {
      if (handlers_.on_update) handlers_.on_update(it->second, kv);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    cache_ = std::move(fresh);
    // Counted with the cache it produced, so a reader never sees one without the other.
    if (first_list_done_) ++relists_;
    // A member behind the one we listed before may answer an older revision;
    // the cache then already is at least as new, so the revision stays.
    synced_revision_ = std::max(synced_revision_, listed->header().revision());
  }
  cv_.notify_all();

  WatchOptions options;
  options.prefix = true;
  options.prev_kv = true;
  options.queue_responses_max = queue_responses_max_;
  options.start_revision = listed->header().revision() + 1;
  absl::StatusOr<std::unique_ptr<Watcher>> w = client_.watch().Watch(prefix_, options);
  if (!w.ok()) return w.status();
  watcher_ = *std::move(w);
  return absl::OkStatus();
}

void Informer::Apply(const mvccpb::Event& event) {
  const mvccpb::KeyValue& kv = event.kv();
  std::optional<mvccpb::KeyValue> before;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(kv.key());
    if (it != cache_.end()) before = it->second;
    if (event.type() == mvccpb::Event::DELETE) {
      cache_.erase(kv.key());
    } else {
      cache_[kv.key()] = kv;
    }
  }
  if (event.type() == mvccpb::Event::DELETE) {
    if (before.has_value() && handlers_.on_delete) handlers_.on_delete(*before);
  } else if (before.has_value()) {
    if (handlers_.on_update) handlers_.on_update(*before, kv);
  } else if (handlers_.on_add) {
    handlers_.on_add(kv);
  }
}

void Informer::Run() {
  absl::Status listed = List();
  {
    std::lock_guard<std::mutex> lock(mu_);
    first_list_ = listed;
    first_list_done_ = true;
  }
  cv_.notify_all();
  if (!listed.ok()) return;

  int failures = 0;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    if (watcher_ == nullptr) {
      absl::Status relisted = List();
      if (!relisted.ok()) {
        // Back off, bounded, and try again: the cluster may be electing.
        failures = std::min(failures + 1, 5);
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, absl::ToChronoNanoseconds(RetryPause(failures)),
                     [this] { return stop_; });
        continue;
      }
      failures = 0;
    }
    // Short waits, so Stop() is noticed promptly.
    absl::StatusOr<WatchBatch> batch = watcher_->Next(absl::Milliseconds(100));
    if (!batch.ok()) {
      if (batch.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
      watcher_.reset();  // compacted or cancelled: list again
      continue;
    }
    for (const mvccpb::Event& e : batch->events) Apply(e);
    SetSynced(batch->events.empty() ? batch->revision : batch->events.back().kv().mod_revision());
  }
  watcher_.reset();
}

}  // namespace ganglion::client
