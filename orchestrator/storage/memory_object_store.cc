#include "orchestrator/storage/memory_object_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ganglion::orchestrator {

class MemoryObjectStore::SubscriptionImpl : public Subscription {
 public:
  SubscriptionImpl(MemoryObjectStore* store, std::shared_ptr<Watch_> watch)
      : store_(store), watch_(std::move(watch)) {}
  ~SubscriptionImpl() override { Cancel(); }
  void Cancel() override {
    std::lock_guard<std::mutex> lock(store_->mu_);
    watch_->active = false;
    auto& w = store_->watches_;
    w.erase(std::remove(w.begin(), w.end(), watch_), w.end());
  }

 private:
  MemoryObjectStore* store_;
  std::shared_ptr<Watch_> watch_;
};

absl::StatusOr<StoredObject> MemoryObjectStore::Get(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(std::string(key));
  if (it == objects_.end())
    return absl::NotFoundError(absl::StrCat("key ", std::string(key), " not found"));
  return it->second;
}

absl::StatusOr<ListPage> MemoryObjectStore::List(std::string_view prefix,
                                                 std::string_view start_key, int64_t limit,
                                                 int64_t revision) {
  std::lock_guard<std::mutex> lock(mu_);
  if (revision != 0 && revision <= compacted_revision_) {
    return absl::OutOfRangeError("etcdserver: mvcc: required revision has been compacted");
  }
  if (revision != 0 && revision != revision_) {
    // Only the newest revision is kept; an older read is as good as compacted.
    return absl::OutOfRangeError("etcdserver: mvcc: required revision has been compacted");
  }
  ListPage page;
  page.revision = revision_;
  const std::string first(start_key.empty() ? prefix : start_key);
  for (auto it = objects_.lower_bound(first); it != objects_.end() && it->first.starts_with(prefix);
       ++it) {
    if (limit != 0 && static_cast<int64_t>(page.items.size()) >= limit) {
      page.more = true;
      ++page.remaining;
      continue;
    }
    page.items.push_back(it->second);
  }
  return page;
}

absl::StatusOr<int64_t> MemoryObjectStore::Create(std::string_view key, std::string_view value) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string k(key);
  if (objects_.count(k)) return absl::AlreadyExistsError(absl::StrCat("key ", k, " exists"));
  const int64_t rev = ++revision_;
  StoredObject o{k, std::string(value), rev, rev};
  objects_[k] = o;
  Emit({ObjectEvent::Type::kPut, rev, o, StoredObject{}});
  return rev;
}

absl::StatusOr<int64_t> MemoryObjectStore::Update(std::string_view key, std::string_view value,
                                                  int64_t expected_mod_revision) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(std::string(key));
  if (it == objects_.end())
    return absl::NotFoundError(absl::StrCat("key ", std::string(key), " not found"));
  if (it->second.mod_revision != expected_mod_revision) {
    return absl::AbortedError(absl::StrCat("key ", std::string(key), " was modified"));
  }
  const StoredObject previous = it->second;
  const int64_t rev = ++revision_;
  it->second.value = std::string(value);
  it->second.mod_revision = rev;
  Emit({ObjectEvent::Type::kPut, rev, it->second, previous});
  return rev;
}

absl::StatusOr<int64_t> MemoryObjectStore::Delete(std::string_view key,
                                                  int64_t expected_mod_revision) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(std::string(key));
  if (it == objects_.end())
    return absl::NotFoundError(absl::StrCat("key ", std::string(key), " not found"));
  if (it->second.mod_revision != expected_mod_revision) {
    return absl::AbortedError(absl::StrCat("key ", std::string(key), " was modified"));
  }
  const StoredObject previous = it->second;
  objects_.erase(it);
  const int64_t rev = ++revision_;
  Emit({ObjectEvent::Type::kDelete, rev, StoredObject{previous.key, "", rev, 0}, previous});
  return rev;
}

void MemoryObjectStore::Emit(ObjectEvent event) {
  history_.push_back(event);
  if (history_.size() > history_events_max_) {
    compacted_revision_ = std::max(compacted_revision_, history_.front().revision);
    history_.erase(history_.begin());
  }
  for (const auto& w : watches_) {
    if (w->active && event.object.key.starts_with(w->prefix)) w->on_events({event});
  }
}

absl::StatusOr<std::unique_ptr<Subscription>> MemoryObjectStore::Watch(std::string_view prefix,
                                                                       int64_t after_revision,
                                                                       EventSink on_events,
                                                                       EndSink) {
  std::lock_guard<std::mutex> lock(mu_);
  if (after_revision < compacted_revision_) {
    return absl::OutOfRangeError(absl::StrCat("too old resource version: ", after_revision));
  }
  std::vector<ObjectEvent> replay;
  for (const ObjectEvent& e : history_) {
    if (e.revision > after_revision && e.object.key.starts_with(prefix)) replay.push_back(e);
  }
  if (!replay.empty()) on_events(replay);
  auto w = std::make_shared<Watch_>(Watch_{std::string(prefix), std::move(on_events), true});
  watches_.push_back(w);
  return std::make_unique<SubscriptionImpl>(this, w);
}

int64_t MemoryObjectStore::watched_revision() const {
  std::lock_guard<std::mutex> lock(mu_);
  return revision_;
}

void MemoryObjectStore::Compact(int64_t revision) {
  std::lock_guard<std::mutex> lock(mu_);
  compacted_revision_ = std::max(compacted_revision_, revision);
  history_.erase(std::remove_if(history_.begin(), history_.end(),
                                [&](const ObjectEvent& e) { return e.revision <= revision; }),
                 history_.end());
}

}  // namespace ganglion::orchestrator
