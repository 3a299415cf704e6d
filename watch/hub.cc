#include "watch/hub.h"

#include <pthread.h>

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ganglion::watch {

using etcdserverpb::WatchResponse;
using storage::RevisionEvents;

namespace {

// Bytes an event adds to a response's encoding: the event, its length
// prefix and its tag (varint length: at most 5 bytes for < 4 GiB).
uint64_t EventWireBytes(const mvccpb::Event& ev) {
  return ev.ByteSizeLong() + 6;
}

// Approximate bytes a revision holds in memory, for the incoming bound. Cheap
// enough for the apply thread: no serialization.
uint64_t ApproxBytes(const RevisionEvents& rev) {
  uint64_t bytes = 64;
  for (const mvccpb::Event& ev : rev.events) {
    bytes += 96 + ev.kv().key().size() + ev.kv().value().size() + ev.prev_kv().key().size() +
             ev.prev_kv().value().size();
  }
  return bytes;
}

// Splits `resp` as etcd does for watchers that asked for fragments: every
// piece but the last has fragment=true, each holds as many whole events as
// keep it under max_bytes (at least one).
std::vector<WatchResponse> Fragment(WatchResponse resp, uint64_t max_bytes) {
  std::vector<WatchResponse> out;
  if (resp.ByteSizeLong() < max_bytes || resp.events_size() < 2) {
    out.push_back(std::move(resp));
    return out;
  }
  WatchResponse base = resp;
  base.clear_events();
  base.set_fragment(true);
  const uint64_t base_bytes = base.ByteSizeLong();
  WatchResponse cur = base;
  uint64_t cur_bytes = base_bytes;
  for (mvccpb::Event& ev : *resp.mutable_events()) {
    const uint64_t ev_bytes = EventWireBytes(ev);
    if (cur.events_size() >= 1 && cur_bytes + ev_bytes >= max_bytes) {
      out.push_back(std::move(cur));
      cur = base;
      cur_bytes = base_bytes;
    }
    *cur.add_events() = std::move(ev);
    cur_bytes += ev_bytes;
  }
  cur.set_fragment(false);
  out.push_back(std::move(cur));
  return out;
}

template <typename List, typename W>
void ListAdd(List& list, W* w) {
  w->slot = static_cast<uint32_t>(list.size());
  list.push_back(w);
}

// O(1): the last watcher takes w's slot.
template <typename List, typename W>
void ListRemove(List& list, W* w) {
  assert(w->slot < list.size() && list[w->slot] == w);
  W* last = list.back();
  list[w->slot] = last;
  last->slot = w->slot;
  list.pop_back();
}

}  // namespace

// ---- Queue ----

bool Hub::Queue::Push(WatchResponse resp) {
  std::lock_guard lock(mu_);
  pending_bytes_.fetch_add(resp.ByteSizeLong(), std::memory_order_relaxed);
  queue_.push_back(std::move(resp));
  if (!consumer_waiting_) return false;
  consumer_waiting_ = false;
  return true;
}

bool Hub::Queue::Pop(WatchResponse* out) {
  std::lock_guard lock(mu_);
  if (queue_.empty()) {
    consumer_waiting_ = true;
    return false;
  }
  *out = std::move(queue_.front());
  queue_.pop_front();
  // ByteSizeLong of the moved-out message equals what was added on Push.
  pending_bytes_.fetch_sub(out->ByteSizeLong(), std::memory_order_relaxed);
  return true;
}

// ---- Hub ----

Hub::Hub(std::shared_ptr<storage::StateStore> store, HubOptions options)
    : options_(std::move(options)) {
  assert(store != nullptr);
  assert(options_.catchup_events_max > 0 && options_.tick.count() > 0);
  next_progress_at_ = std::chrono::steady_clock::now() + options_.progress_notify_interval;
  {
    std::lock_guard lock(mu_);
    ResetStoreLocked(store);
  }
  dispatcher_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "watch-hub");
    DispatchLoop();
  });
}

Hub::~Hub() {
  Stop();
}

void Hub::Stop() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard lock(in_mu_);
    stop_ = true;
  }
  in_cv_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
}

void Hub::ResetStore(std::shared_ptr<storage::StateStore> store) {
  assert(store != nullptr);
  {
    std::lock_guard lock(mu_);
    ResetStoreLocked(store);
  }
  std::lock_guard lock(in_mu_);
  kick_ = true;
  in_cv_.notify_all();
}

void Hub::ResetStoreLocked(std::shared_ptr<storage::StateStore> store) {
  store_ = store;
  store_generation_++;
  const int64_t current = store->current_revision();
  {
    std::lock_guard lock(in_mu_);
    // What is queued came from the old store; the new one's history holds
    // the same revisions (it is a later state of the same log).
    incoming_.clear();
    incoming_bytes_ = 0;
    latest_rev_ = current;
  }
  // Synced watchers' next revisions are relative to the old live revision:
  // make them explicit and set every watcher aside before re-partitioning.
  for (Watcher* w : SyncedWatchers()) MarkUnsynced(w);
  live_rev_ = current;
  // Re-partition: whoever still needs a revision <= current reads it from
  // the new store's history.
  for (Watcher* w : std::vector<Watcher*>(unsynced_.begin(), unsynced_.end())) {
    if (w->next_rev > live_rev_) MarkSynced(w);
  }
}

void Hub::Publish(std::vector<RevisionEvents> batch) {
  // On the apply thread: never take mu_, never wait.
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    const bool watched = watcher_count_.load() > 0;
    // The dispatcher swaps out the whole queue, so it needs a wake only when
    // the queue stops being empty; with no watchers nobody needs one (a new
    // watcher starts after max(latest_rev_, live_rev_)).
    wake = watched && incoming_.empty();
    for (RevisionEvents& rev : batch) {
      latest_rev_ = std::max(latest_rev_, rev.revision);
      const uint64_t bytes = ApproxBytes(rev);
      if (!watched || incoming_.size() >= options_.incoming_revisions_max ||
          incoming_bytes_ + bytes > options_.incoming_bytes_max) {
        // Not queued: the dispatcher sees latest_rev_ ahead of what it got
        // and sends its watchers to history for the missing revisions.
        dropped_revisions_total_.fetch_add(1, std::memory_order_relaxed);
      } else {
        incoming_.push_back(std::move(rev));
        incoming_bytes_ += bytes;
      }
    }
  }
  if (wake) in_cv_.notify_one();
}

void Hub::DispatchLoop() {
  // Exits only on Stop; each round handles what arrived, a bounded number of
  // catch-up pages and the progress timers.
  for (;;) {
    std::deque<RevisionEvents> batch;
    int64_t latest = 0;
    {
      std::unique_lock lock(in_mu_);
      in_cv_.wait_for(lock, options_.tick, [&] { return stop_ || kick_ || !incoming_.empty(); });
      if (stop_) return;
      kick_ = false;
      batch.swap(incoming_);
      incoming_bytes_ = 0;
      latest = latest_rev_;
    }
    {
      std::lock_guard lock(mu_);
      DispatchLive(batch, latest);
    }
    for (int i = 0; i < options_.catchup_pages_per_round_max; ++i) {
      if (!CatchUpOnce()) break;
    }
    std::lock_guard lock(mu_);
    ProgressTick(std::chrono::steady_clock::now());
  }
}

bool Hub::Watcher::Matches(const std::string& k) const {
  if (range_end == nullptr) return k == key;
  if (*range_end == std::string_view("\0", 1)) return k >= key;
  return k >= key && k < *range_end;
}

bool Hub::Slow(const Stream* s) const {
  return s->queue->pending_bytes() > options_.stream_pending_bytes_max;
}

bool Hub::Drained(const Stream* s) const {
  return s->queue->pending_bytes() <= options_.stream_pending_bytes_max / 2;
}

int64_t Hub::NextRev(const Watcher* w) const {
  return w->synced ? std::max(w->next_rev, live_rev_ + 1) : w->next_rev;
}

void Hub::IndexSynced(Watcher* w, bool add) {
  if (w->range_end != nullptr) {
    if (add) {
      ListAdd(synced_ranges_, w);
    } else {
      ListRemove(synced_ranges_, w);
    }
    return;
  }
  if (add) {
    ListAdd(synced_by_key_[w->key], w);
    return;
  }
  auto it = synced_by_key_.find(w->key);
  assert(it != synced_by_key_.end());
  ListRemove(it->second, w);
  if (it->second.empty()) synced_by_key_.erase(it);
}

std::vector<Hub::Watcher*> Hub::SyncedWatchers() const {
  std::vector<Watcher*> all(synced_ranges_.begin(), synced_ranges_.end());
  for (const auto& [key, list] : synced_by_key_) all.insert(all.end(), list.begin(), list.end());
  return all;
}

void Hub::MarkUnsynced(Watcher* w) {
  if (w->synced) {
    w->next_rev = NextRev(w);  // make the implicit next revision explicit
    IndexSynced(w, false);
  }
  unsynced_.insert(w);
  w->synced = false;
}

void Hub::MarkSynced(Watcher* w) {
  unsynced_.erase(w);
  if (!w->synced) IndexSynced(w, true);
  w->synced = true;
}

bool Hub::LoadPrevValues(RevisionEvents* rev) {
  if (rev->prev_values) return true;
  std::shared_ptr<storage::StateStore> store = store_.lock();
  // Loading in place keeps the events where they are (candidates point at them).
  return store != nullptr && store->LoadPrevValues(rev).ok();
}

void Hub::DispatchLive(std::deque<RevisionEvents>& revisions, int64_t latest_rev) {
  std::vector<const mvccpb::Event*> candidates;
  // A copy: delivering may move watchers out of the sets it comes from.
  std::vector<Watcher*> concerned;
  for (RevisionEvents& rev : revisions) {
    // Already covered (the store was reset to a later state meanwhile).
    if (rev.revision <= live_rev_) continue;
    if (rev.revision != live_rev_ + 1) {
      // Revisions in between were dropped at the queue: whoever needed them
      // reads them from history.
      for (Watcher* w : SyncedWatchers()) {
        if (NextRev(w) < rev.revision) MarkUnsynced(w);
      }
    }
    // The watchers this revision can concern: those of its keys, and every
    // range watcher. live_rev_ moves on only after them, so a watcher moved
    // aside here resumes at this revision.
    concerned.assign(synced_ranges_.begin(), synced_ranges_.end());
    for (const mvccpb::Event& ev : rev.events) {
      auto it = synced_by_key_.find(ev.kv().key());
      if (it != synced_by_key_.end())
        concerned.insert(concerned.end(), it->second.begin(), it->second.end());
    }
    // Once each, should a revision name a key twice.
    std::sort(concerned.begin(), concerned.end());
    concerned.erase(std::unique(concerned.begin(), concerned.end()), concerned.end());
    for (Watcher* w : concerned) {
      if (w->next_rev > rev.revision) continue;  // starts later
      candidates.clear();
      for (const mvccpb::Event& ev : rev.events) {
        if (w->Matches(ev.kv().key())) candidates.push_back(&ev);
      }
      if (candidates.empty()) continue;
      // Moved aside (a full stream, or previous values it wants that could
      // not be read here): it resumes at this revision from history, which
      // carries them, once its stream has drained.
      if (Slow(w->stream) || (w->prev_kv && !LoadPrevValues(&rev))) {
        w->next_rev = rev.revision;
        IndexSynced(w, false);
        unsynced_.insert(w);
        w->synced = false;
        continue;
      }
      Deliver(w, candidates, rev.revision);
      w->next_rev = rev.revision + 1;
    }
    live_rev_ = rev.revision;
  }
  if (latest_rev > live_rev_) {
    for (Watcher* w : SyncedWatchers()) {
      if (NextRev(w) <= latest_rev) MarkUnsynced(w);
    }
    live_rev_ = latest_rev;
  }
}

void Hub::Deliver(Watcher* w, const std::vector<const mvccpb::Event*>& events, int64_t header_rev) {
  WatchResponse resp;
  for (const mvccpb::Event* ev : events) {
    if (ev->type() == mvccpb::Event::PUT && w->filter_put) continue;
    if (ev->type() == mvccpb::Event::DELETE && w->filter_delete) continue;
    mvccpb::Event* out = resp.add_events();
    *out = *ev;
    if (!w->prev_kv) out->clear_prev_kv();
  }
  if (resp.events_size() == 0) return;
  resp.mutable_header()->set_revision(header_rev);
  resp.set_watch_id(w->id);
  w->sent_since_progress = true;
  events_sent_total_.fetch_add(resp.events_size(), std::memory_order_relaxed);
  if (w->fragment) {
    for (WatchResponse& piece : Fragment(std::move(resp), options_.max_request_bytes)) {
      Push(w->stream, std::move(piece));
    }
  } else {
    Push(w->stream, std::move(resp));
  }
}

void Hub::Push(Stream* s, WatchResponse resp) {
  if (s->queue->Push(std::move(resp)) && s->on_ready) s->on_ready();
}

bool Hub::CatchUpOnce() {
  // mu_ is held across the history read: it is bounded (one page), and it
  // keeps the watcher set still while the page is handed out.
  std::lock_guard lock(mu_);
  std::vector<Watcher*> eligible;
  int64_t min_rev = INT64_MAX;
  for (Watcher* w : unsynced_) {
    if (!Drained(w->stream)) continue;
    eligible.push_back(w);
    min_rev = std::min(min_rev, w->next_rev);
  }
  if (eligible.empty()) return false;
  std::shared_ptr<storage::StateStore> store = store_.lock();
  if (!store) return false;  // being replaced; ResetStore follows
  auto page = store->EventsSince(min_rev, live_rev_ + 1, options_.catchup_events_max);
  if (!page.ok()) {
    if (page.status().message() != storage::kErrCompacted) return false;  // retried next tick
    const int64_t compact = store->compact_revision();
    bool canceled_any = false;
    for (Watcher* w : eligible) {
      if (w->next_rev >= compact) continue;
      WatchResponse resp;
      resp.mutable_header()->set_revision(live_rev_);
      resp.set_watch_id(w->id);
      resp.set_canceled(true);
      resp.set_compact_revision(compact);
      Push(w->stream, std::move(resp));
      RemoveWatcher(w);
      canceled_any = true;
    }
    return canceled_any;
  }
  std::vector<const mvccpb::Event*> candidates;
  for (Watcher* w : eligible) {
    if (w->next_rev >= page->next_rev) continue;  // the page ends before it
    candidates.clear();
    for (const RevisionEvents& rev : page->revisions) {
      if (rev.revision < w->next_rev) continue;
      for (const mvccpb::Event& ev : rev.events) {
        if (w->Matches(ev.kv().key())) candidates.push_back(&ev);
      }
    }
    Deliver(w, candidates, live_rev_);
    w->next_rev = page->next_rev;
    if (w->next_rev > live_rev_) MarkSynced(w);
  }
  return true;
}

void Hub::ProgressTick(std::chrono::steady_clock::time_point now) {
  for (auto it = progress_requested_.begin(); it != progress_requested_.end();) {
    auto s = streams_.find(*it);
    if (s == streams_.end()) {
      it = progress_requested_.erase(it);
      continue;
    }
    bool all_synced = true;
    for (const auto& w : s->second->watchers) all_synced = all_synced && w->synced;
    if (!all_synced) {
      ++it;
      continue;
    }
    WatchResponse resp;
    resp.mutable_header()->set_revision(live_rev_);
    resp.set_watch_id(-1);
    Push(s->second.get(), std::move(resp));
    it = progress_requested_.erase(it);
  }
  if (now < next_progress_at_) return;
  next_progress_at_ = now + options_.progress_notify_interval;
  for (auto& [id, s] : streams_) {
    for (const auto& w : s->watchers) {
      if (!w->progress_notify) continue;
      // As etcd: a watcher that got events during the interval needs no
      // notification, and one that is catching up gets none.
      if (w->synced && !w->sent_since_progress) {
        WatchResponse resp;
        resp.mutable_header()->set_revision(live_rev_);
        resp.set_watch_id(w->id);
        Push(s.get(), std::move(resp));
      }
      w->sent_since_progress = false;
    }
  }
}

void Hub::RemoveWatcher(Watcher* w) {
  if (w->synced) IndexSynced(w, false);
  unsynced_.erase(w);
  watcher_count_.fetch_sub(1);
  w->stream->watchers.erase(w->id);  // destroys w
}

absl::StatusOr<Hub::StreamRef> Hub::OpenStream(ReadyFn on_ready) {
  std::lock_guard lock(mu_);
  if (streams_.size() >= options_.streams_max) {
    return absl::ResourceExhaustedError(kErrTooManyRequests);
  }
  auto s = std::make_unique<Stream>();
  s->id = next_stream_id_++;
  s->on_ready = std::move(on_ready);
  s->queue = std::make_shared<Queue>();
  StreamRef ref{s->id, s->queue};
  streams_.emplace(s->id, std::move(s));
  return ref;
}

void Hub::CloseStream(StreamId stream) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  Stream* s = it->second.get();
  std::vector<Watcher*> watchers;
  watchers.reserve(s->watchers.size());
  for (const auto& w : s->watchers) watchers.push_back(w.get());
  for (Watcher* w : watchers) RemoveWatcher(w);
  progress_requested_.erase(stream);
  streams_.erase(it);
}

absl::Status Hub::Create(StreamId stream, const WatchSpec& spec_in) {
  int64_t latest = 0;
  {
    std::lock_guard lock(in_mu_);
    latest = latest_rev_;
  }
  std::lock_guard lock(mu_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return absl::NotFoundError("no such watch stream");
  Stream* s = it->second.get();
  if (s->queue->pending_bytes() > options_.stream_queue_bytes_hard_max) {
    return absl::ResourceExhaustedError(kErrTooManyRequests);
  }
  WatchSpec spec = spec_in;
  if (spec.key.empty()) spec.key = std::string(1, '\0');
  const int64_t header_rev = std::max(latest, live_rev_);
  auto refuse = [&](const char* reason) {
    WatchResponse resp;
    resp.mutable_header()->set_revision(header_rev);
    resp.set_watch_id(-1);
    resp.set_created(true);
    resp.set_canceled(true);
    resp.set_cancel_reason(reason);
    Push(s, std::move(resp));
    return absl::OkStatus();
  };
  const bool from_key = spec.range_end == std::string(1, '\0');
  if (!spec.range_end.empty() && !from_key && spec.key >= spec.range_end) {
    return refuse(kErrEmptyWatcherRange);
  }
  if (s->watchers.size() >= options_.watchers_per_stream_max) return refuse(kErrTooManyRequests);
  int64_t id = spec.watch_id;
  if (id == 0) {
    // As etcd: the lowest unused id from the stream's counter on.
    while (s->watchers.count(s->next_auto_id) > 0) s->next_auto_id++;
    id = s->next_auto_id++;
  } else if (s->watchers.count(id) > 0) {
    return refuse(kErrDuplicateWatchId);
  }
  auto w = std::make_unique<Watcher>();
  w->stream = s;
  w->key = std::move(spec.key);
  if (!spec.range_end.empty()) {
    w->range_end = std::make_unique<const std::string>(std::move(spec.range_end));
  }
  w->id = id;
  w->next_rev = spec.start_revision > 0 ? spec.start_revision : header_rev + 1;
  w->progress_notify = spec.progress_notify;
  w->filter_put = spec.filter_put;
  w->filter_delete = spec.filter_delete;
  w->prev_kv = spec.prev_kv;
  w->fragment = spec.fragment;

  WatchResponse created;
  created.mutable_header()->set_revision(header_rev);
  created.set_watch_id(id);
  created.set_created(true);
  Push(s, std::move(created));

  Watcher* raw = w.get();
  s->watchers.insert(std::move(w));
  watcher_count_.fetch_add(1);
  if (raw->next_rev > live_rev_) {
    MarkSynced(raw);
  } else {
    MarkUnsynced(raw);
    std::lock_guard in_lock(in_mu_);
    kick_ = true;
    in_cv_.notify_one();
  }
  return absl::OkStatus();
}

absl::Status Hub::Cancel(StreamId stream, int64_t watch_id) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return absl::NotFoundError("no such watch stream");
  Stream* s = it->second.get();
  auto w = s->watchers.find(watch_id);
  // As etcd 3.4: canceling an unknown id answers nothing.
  if (w == s->watchers.end()) return absl::OkStatus();
  RemoveWatcher(w->get());
  WatchResponse resp;
  resp.mutable_header()->set_revision(live_rev_);
  resp.set_watch_id(watch_id);
  resp.set_canceled(true);
  Push(s, std::move(resp));
  return absl::OkStatus();
}

absl::Status Hub::RequestProgress(StreamId stream) {
  {
    std::lock_guard lock(mu_);
    auto it = streams_.find(stream);
    if (it == streams_.end()) return absl::NotFoundError("no such watch stream");
    progress_requested_.insert(stream);
  }
  // The dispatcher answers once every watcher of the stream is synced, after
  // the events up to the revision it reports.
  std::lock_guard in_lock(in_mu_);
  kick_ = true;
  in_cv_.notify_one();
  return absl::OkStatus();
}

HubStats Hub::Stats() const {
  HubStats st;
  {
    std::lock_guard lock(mu_);
    st.streams = streams_.size();
    st.slow_watchers = unsynced_.size();
  }
  st.watchers = watcher_count_.load();
  st.events_sent_total = events_sent_total_.load();
  st.incoming_dropped_revisions_total = dropped_revisions_total_.load();
  return st;
}

int64_t Hub::live_revision() const {
  std::lock_guard lock(mu_);
  return live_rev_;
}

}  // namespace ganglion::watch
