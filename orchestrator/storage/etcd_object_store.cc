#include "orchestrator/storage/etcd_object_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ganglion::orchestrator {

namespace gc = ganglion::client;

namespace {

StoredObject FromKv(const mvccpb::KeyValue& kv) {
  return StoredObject{kv.key(), kv.value(), kv.mod_revision(), kv.create_revision()};
}

gc::GetOptions KeysOnly() {
  gc::GetOptions o;
  o.keys_only = true;
  return o;
}

// etcd answers a read at a compacted revision with OUT_OF_RANGE; keep the code.
absl::Status Transport(const absl::Status& s) {
  return s;
}

}  // namespace

class EtcdObjectStore::SubscriptionImpl : public Subscription {
 public:
  SubscriptionImpl(std::weak_ptr<Hub> hub, std::list<Subscriber>::iterator it)
      : hub_(std::move(hub)), it_(it) {}
  ~SubscriptionImpl() override { Cancel(); }
  void Cancel() override {
    auto hub = hub_.lock();
    if (!hub) return;
    std::lock_guard<std::mutex> lock(hub->mu);
    if (cancelled_) return;
    cancelled_ = true;
    hub->subscribers.erase(it_);
  }

 private:
  std::weak_ptr<Hub> hub_;
  std::list<Subscriber>::iterator it_;
  bool cancelled_ = false;  // guarded by hub->mu
};

absl::StatusOr<std::unique_ptr<EtcdObjectStore>> EtcdObjectStore::Create(
    EtcdObjectStoreOptions options) {
  gc::ClientConfig config;
  config.endpoints = options.endpoints;
  config.channel = options.channel;
  auto client = gc::Client::Create(config);
  if (!client.ok()) return client.status();
  std::unique_ptr<EtcdObjectStore> store(
      new EtcdObjectStore(std::move(options), std::move(*client)));
  store->thread_ = std::thread([s = store.get()] { s->Run(); });
  return store;
}

EtcdObjectStore::EtcdObjectStore(EtcdObjectStoreOptions options,
                                 std::unique_ptr<client::Client> client)
    : options_(std::move(options)), client_(std::move(client)) {}

EtcdObjectStore::~EtcdObjectStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  EndAll(absl::CancelledError("object store stopped"));
}

bool EtcdObjectStore::WaitReady(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return ready_cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] {
    return ready_ || stop_;
  }) && ready_;
}

int64_t EtcdObjectStore::watched_revision() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watched_revision_;
}

absl::StatusOr<StoredObject> EtcdObjectStore::Get(std::string_view key) {
  auto r = client_->kv().Get(key);
  if (!r.ok()) return Transport(r.status());
  if (r->kvs_size() == 0)
    return absl::NotFoundError(absl::StrCat("key ", std::string(key), " not found"));
  return FromKv(r->kvs(0));
}

absl::StatusOr<ListPage> EtcdObjectStore::List(std::string_view prefix, std::string_view start_key,
                                               int64_t limit, int64_t revision) {
  gc::GetOptions o;
  o.range_end = gc::PrefixEnd(prefix);
  o.limit = limit;
  o.revision = revision;
  auto r = client_->kv().Get(start_key.empty() ? prefix : start_key, o);
  if (!r.ok()) return Transport(r.status());
  ListPage page;
  page.revision = r->header().revision();
  page.items.reserve(r->kvs_size());
  for (const auto& kv : r->kvs()) page.items.push_back(FromKv(kv));
  page.more = r->more();
  page.remaining = r->count() - r->kvs_size();
  return page;
}

absl::StatusOr<int64_t> EtcdObjectStore::Create(std::string_view key, std::string_view value) {
  gc::Txn txn;
  txn.If(gc::CreateRevision(key) == 0).Then(gc::Op::Put(key, value));
  auto r = client_->kv().Commit(txn);
  if (!r.ok()) return Transport(r.status());
  if (!r->succeeded())
    return absl::AlreadyExistsError(absl::StrCat("key ", std::string(key), " exists"));
  return r->header().revision();
}

absl::StatusOr<int64_t> EtcdObjectStore::Update(std::string_view key, std::string_view value,
                                                int64_t expected_mod_revision) {
  gc::Txn txn;
  txn.If(gc::ModRevision(key) == expected_mod_revision)
      .Then(gc::Op::Put(key, value))
      .Else(gc::Op::Get(key, KeysOnly()));
  auto r = client_->kv().Commit(txn);
  if (!r.ok()) return Transport(r.status());
  if (!r->succeeded()) {
    if (r->responses_size() == 0 || r->responses(0).response_range().kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat("key ", std::string(key), " not found"));
    }
    return absl::AbortedError(absl::StrCat("key ", std::string(key), " was modified"));
  }
  return r->header().revision();
}

absl::StatusOr<int64_t> EtcdObjectStore::Delete(std::string_view key,
                                                int64_t expected_mod_revision) {
  gc::Txn txn;
  txn.If(gc::ModRevision(key) == expected_mod_revision)
      .Then(gc::Op::Delete(key))
      .Else(gc::Op::Get(key, KeysOnly()));
  auto r = client_->kv().Commit(txn);
  if (!r.ok()) return Transport(r.status());
  if (!r->succeeded()) {
    if (r->responses_size() == 0 || r->responses(0).response_range().kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat("key ", std::string(key), " not found"));
    }
    return absl::AbortedError(absl::StrCat("key ", std::string(key), " was modified"));
  }
  return r->header().revision();
}

absl::StatusOr<std::unique_ptr<Subscription>> EtcdObjectStore::Watch(std::string_view prefix,
                                                                     int64_t after_revision,
                                                                     EventSink on_events,
                                                                     EndSink on_end) {
  // The window may still hold events etcd has compacted away; a start that
  // etcd could no longer serve is refused all the same, so a client sees the
  // same 410 from every member whatever its window holds.
  if (after_revision > 0) {
    gc::GetOptions probe;
    probe.revision = after_revision;
    probe.count_only = true;
    probe.limit = 1;
    auto read = client_->kv().Get(options_.root_prefix, probe);
    if (!read.ok() && absl::IsOutOfRange(read.status()) &&
        absl::StrContains(read.status().message(), "compacted")) {
      return absl::OutOfRangeError(
          absl::StrCat("too old resource version: ", after_revision, " (compacted)"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_) return absl::UnavailableError("the store's watch is not established yet");
  if (after_revision < history_floor_revision_) {
    return absl::OutOfRangeError(absl::StrCat("too old resource version: ", after_revision, " (",
                                              history_floor_revision_, ")"));
  }
  // Replay what the window holds after the start, then join the live feed;
  // both under mu_, so no event falls between them.
  std::vector<ObjectEvent> replay;
  // history_ is in revision order: skip to the first event after the start.
  auto first = std::upper_bound(
      history_.begin(), history_.end(), after_revision,
      [](int64_t revision, const ObjectEvent& e) { return revision < e.revision; });
  for (auto it = first; it != history_.end(); ++it) {
    if (it->object.key.starts_with(prefix)) replay.push_back(*it);
  }
  if (!replay.empty()) on_events(replay);
  std::lock_guard<std::mutex> hub_lock(hub_->mu);
  hub_->subscribers.push_back(
      Subscriber{std::string(prefix), after_revision, std::move(on_events), std::move(on_end)});
  return std::make_unique<SubscriptionImpl>(hub_, std::prev(hub_->subscribers.end()));
}

absl::StatusOr<std::unique_ptr<gc::Watcher>> EtcdObjectStore::OpenWatch() {
  gc::GetOptions count;
  count.prefix = true;
  count.count_only = true;
  auto head = client_->kv().Get(options_.root_prefix, count);
  if (!head.ok()) return head.status();
  const int64_t revision = head->header().revision();
  // Start a little in the past: objects written before this watch came up
  // (right after the member started, or while it was re-established) stay
  // watchable from their own resourceVersion.
  int64_t start = std::max<int64_t>(1, revision + 1 - options_.backfill_revisions);
  gc::WatchOptions wo;
  wo.prefix = true;
  wo.prev_kv = true;
  wo.progress_notify = true;
  absl::StatusOr<std::unique_ptr<gc::Watcher>> watcher;
  // At most twice: once from `start`, once from the compaction it reports.
  for (int attempt = 0; attempt < 2; ++attempt) {
    wo.start_revision = start;
    watcher = client_->watch().Watch(options_.root_prefix, wo);
    if (watcher.ok() || !gc::IsCompacted(watcher.status())) break;
    start = std::max(start, gc::CompactRevision(watcher.status()));
  }
  if (!watcher.ok()) return watcher.status();
  std::lock_guard<std::mutex> lock(mu_);
  history_.clear();
  history_floor_revision_ = start - 1;
  // Not `revision`: the replay up to it has not been delivered yet.
  watched_revision_ = std::max(watched_revision_, start - 1);
  ready_ = true;
  ready_cv_.notify_all();
  return watcher;
}

void EtcdObjectStore::Deliver(const gc::WatchBatch& batch) {
  std::vector<ObjectEvent> events;
  events.reserve(batch.events.size());
  for (const mvccpb::Event& e : batch.events) {
    ObjectEvent oe;
    oe.type =
        e.type() == mvccpb::Event::DELETE ? ObjectEvent::Type::kDelete : ObjectEvent::Type::kPut;
    oe.revision = e.kv().mod_revision();
    oe.object = FromKv(e.kv());
    if (e.has_prev_kv()) oe.previous = FromKv(e.prev_kv());
    events.push_back(std::move(oe));
  }
  std::lock_guard<std::mutex> lock(mu_);
  int64_t newest = batch.revision;
  for (const ObjectEvent& e : events) newest = std::max(newest, e.revision);
  watched_revision_ = std::max(watched_revision_, newest);
  for (ObjectEvent& e : events) {
    history_.push_back(e);
    if (history_.size() > options_.history_events_max) {
      history_floor_revision_ = history_.front().revision;
      history_.pop_front();
    }
  }
  std::lock_guard<std::mutex> hub_lock(hub_->mu);
  for (Subscriber& s : hub_->subscribers) {
    if (s.ended) continue;
    std::vector<ObjectEvent> mine;
    for (const ObjectEvent& e : events) {
      if (e.revision > s.after_revision && e.object.key.starts_with(s.prefix)) {
        mine.push_back(e);
      }
    }
    if (!mine.empty()) s.on_events(mine);
  }
}

void EtcdObjectStore::EndAll(const absl::Status& why) {
  std::lock_guard<std::mutex> hub_lock(hub_->mu);
  for (Subscriber& s : hub_->subscribers) {
    if (s.ended) continue;
    if (s.on_end) s.on_end(why);
    // The subscription still owns its list node; it stays, silenced.
    s.ended = true;
  }
}

void EtcdObjectStore::Run() {
  std::unique_ptr<gc::Watcher> watcher;
  absl::Time last_activity = absl::Now();
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    if (!watcher) {
      auto opened = OpenWatch();
      if (!opened.ok()) {
        // The member may still be electing a leader; try again shortly.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      watcher = std::move(*opened);
      last_activity = absl::Now();
      spdlog::info("event=api_watch_started revision={}", watched_revision());
    }
    auto batch = watcher->Next(absl::Milliseconds(200));
    if (batch.ok()) {
      last_activity = absl::Now();
      Deliver(*batch);
      continue;
    }
    if (absl::IsDeadlineExceeded(batch.status())) {
      if (absl::Now() - last_activity > options_.progress_interval) {
        (void)client_->watch().RequestProgress();
        last_activity = absl::Now();
      }
      continue;
    }
    // Compacted past us or cancelled by the server: subscribers cannot be
    // resumed exactly, so they end (their clients re-list) and we restart.
    spdlog::warn("event=api_watch_broken error=\"{}\"", batch.status().ToString());
    watcher.reset();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_ = false;
    }
    EndAll(absl::OutOfRangeError("the store's watch restarted; re-list"));
  }
}

}  // namespace ganglion::orchestrator
