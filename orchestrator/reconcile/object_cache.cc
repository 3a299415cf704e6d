#include "orchestrator/reconcile/object_cache.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator {

std::string ObjectKey(const std::string& namespace_name, const std::string& name) {
  return namespace_name.empty() ? name : absl::StrCat(namespace_name, "/", name);
}

std::string ObjectKey(const Json& object) {
  const Json& meta = object.contains("metadata") ? object["metadata"] : Json::object();
  return ObjectKey(meta.value("namespace", ""), meta.value("name", ""));
}

std::pair<std::string, std::string> SplitObjectKey(const std::string& key) {
  const size_t slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

namespace {

// "/registry/pods/ns/name" -> "ns/name"; "/registry/nodes/n1" -> "n1".
std::string KeyFromStoreKey(const std::string& prefix, const std::string& store_key) {
  return store_key.substr(prefix.size());
}

}  // namespace

ObjectCache::ObjectCache(ObjectStore& store, const ResourceType& type, int64_t page_size)
    : store_(store),
      type_(type),
      prefix_(absl::StrCat("/registry/", type.plural, "/")),
      page_size_(page_size) {}

ObjectCache::~ObjectCache() { Stop(); }

void ObjectCache::AddHandlers(CacheHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void ObjectCache::AddIndex(const std::string& name, IndexFn fn) { index_fns_[name] = std::move(fn); }

absl::Status ObjectCache::Start() {
  absl::Status st = ListAndWatch(/*first=*/true);
  if (!st.ok()) return st;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ObjectCache::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    live_ = false;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  // Cancel without holding mu_: a sink may be waiting for it.
  if (subscription_) subscription_->Cancel();
  subscription_.reset();
}

void ObjectCache::IndexLocked(const std::string& key, const Json& object, bool add) {
  for (const auto& [name, fn] : index_fns_) {
    for (const std::string& value : fn(object)) {
      auto& keys = indexes_[name][value];
      if (add) {
        keys.insert(key);
      } else {
        keys.erase(key);
        if (keys.empty()) indexes_[name].erase(value);
      }
    }
  }
}

ObjectPtr ObjectCache::PutLocked(const std::string& key, ObjectPtr object) {
  ObjectPtr& slot = objects_[key];
  ObjectPtr before = std::move(slot);
  if (before) IndexLocked(key, *before, false);
  IndexLocked(key, *object, true);
  slot = std::move(object);
  return before;
}

ObjectPtr ObjectCache::RemoveLocked(const std::string& key) {
  auto it = objects_.find(key);
  if (it == objects_.end()) return nullptr;
  ObjectPtr before = std::move(it->second);
  objects_.erase(it);
  IndexLocked(key, *before, false);
  return before;
}

absl::Status ObjectCache::ListAndWatch(bool first) {
  // Every page at the first page's revision: one consistent snapshot.
  std::map<std::string, ObjectPtr> listed;
  int64_t revision = 0;
  std::string start;
  for (;;) {
    auto page = store_.List(prefix_, start, page_size_, revision);
    if (!page.ok()) return page.status();
    revision = page->revision;
    for (StoredObject& o : page->items) {
      listed[KeyFromStoreKey(prefix_, o.key)] =
          std::make_shared<const Json>(ParseStoredObject(o.value, o.mod_revision));
    }
    if (!page->more || page->items.empty()) break;
    start = page->items.back().key + std::string(1, '\0');
  }
  // The difference from what the cache held, as handler calls.
  std::vector<Change> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = objects_.begin(); it != objects_.end();) {
      if (listed.count(it->first) == 0) {
        const std::string key = (it++)->first;
        changes.push_back({RemoveLocked(key), nullptr});
      } else {
        ++it;
      }
    }
    for (auto& [key, object] : listed) {
      auto it = objects_.find(key);
      if (it != objects_.end() &&
          (*it->second)["metadata"].value("resourceVersion", "") ==
              (*object)["metadata"].value("resourceVersion", "")) {
        continue;
      }
      ObjectPtr before = PutLocked(key, object);
      changes.push_back({before, object});
    }
    revision_ = std::max(revision_, revision);
    if (!first) ++relists_;
    relist_ = false;
    cv_.notify_all();
  }
  Notify(changes);
  auto sub = store_.Watch(
      prefix_, revision, [this](const std::vector<ObjectEvent>& events) { OnEvents(events); },
      [this](const absl::Status& why) {
        spdlog::info("event=cache_watch_ended resource={} error=\"{}\"", type_.plural,
                     why.ToString());
        std::lock_guard<std::mutex> lock(mu_);
        relist_ = true;
        live_ = false;
        cv_.notify_all();
      });
  if (!sub.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    relist_ = true;
    return sub.status();
  }
  subscription_ = std::move(*sub);
  std::lock_guard<std::mutex> lock(mu_);
  live_ = !relist_;
  return absl::OkStatus();
}

void ObjectCache::Notify(const std::vector<Change>& changes) {
  for (const Change& c : changes) {
    for (const CacheHandlers& h : handlers_) {
      if (!c.after) {
        if (h.on_delete) h.on_delete(c.before);
      } else if (!c.before) {
        if (h.on_add) h.on_add(c.after);
      } else if (h.on_update) {
        h.on_update(c.before, c.after);
      }
    }
  }
}

void ObjectCache::OnEvents(const std::vector<ObjectEvent>& events) {
  std::vector<Change> changes;
  changes.reserve(events.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const ObjectEvent& e : events) {
      if (e.revision <= revision_) continue;  // already in the list
      const std::string key = KeyFromStoreKey(prefix_, e.object.key);
      if (e.type == ObjectEvent::Type::kDelete) {
        ObjectPtr before = RemoveLocked(key);
        if (before) changes.push_back({before, nullptr});
      } else {
        auto after = std::make_shared<const Json>(ParseStoredObject(e.object.value, e.revision));
        ObjectPtr before = PutLocked(key, after);
        changes.push_back({before, after});
      }
    }
    for (const ObjectEvent& e : events) revision_ = std::max(revision_, e.revision);
    cv_.notify_all();
  }
  Notify(changes);
}

void ObjectCache::Run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || relist_; });
      if (stop_) return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_ = false;
    }
    if (subscription_) subscription_->Cancel();
    subscription_.reset();
    absl::Status st = ListAndWatch(/*first=*/false);
    if (!st.ok()) {
      spdlog::warn("event=cache_relist_failed resource={} error=\"{}\"", type_.plural,
                   st.ToString());
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_; });
    }
  }
}

ObjectPtr ObjectCache::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

ObjectPtr ObjectCache::Get(const std::string& namespace_name, const std::string& name) const {
  return Get(ObjectKey(namespace_name, name));
}

std::vector<ObjectPtr> ObjectCache::List(const std::string& namespace_name) const {
  std::vector<ObjectPtr> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (namespace_name.empty()) {
    out.reserve(objects_.size());
    for (const auto& [key, o] : objects_) out.push_back(o);
    return out;
  }
  const std::string from = namespace_name + "/";
  for (auto it = objects_.lower_bound(from); it != objects_.end() && it->first.starts_with(from);
       ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::vector<ObjectPtr> ObjectCache::ByIndex(const std::string& index,
                                            const std::string& value) const {
  std::vector<ObjectPtr> out;
  std::lock_guard<std::mutex> lock(mu_);
  auto idx = indexes_.find(index);
  if (idx == indexes_.end()) return out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const std::string& key : keys->second) {
    auto it = objects_.find(key);
    if (it != objects_.end()) out.push_back(it->second);
  }
  return out;
}

size_t ObjectCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

int64_t ObjectCache::revision() const {
  int64_t own = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!live_) return revision_;
    own = revision_;
  }
  // The store delivers a revision's events before it reports having seen it,
  // so while the watch is live the cache is current up to the store's mark.
  // Asked without mu_: the store calls our sink with its own lock held.
  return std::max(own, store_.watched_revision());
}

bool ObjectCache::WaitForRevision(int64_t revision, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (this->revision() >= revision) return true;
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_ || absl::Now() >= deadline) return false;
    // Progress marks arrive without an event: poll at a short interval.
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
}

int ObjectCache::relists() const {
  std::lock_guard<std::mutex> lock(mu_);
  return relists_;
}

}  // namespace ganglion::orchestrator
