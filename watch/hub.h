// The watch hub: etcd's Watch semantics over one StateStore. It takes the
// events of every applied revision from the apply loop, fans them out to the
// watchers of many client streams, catches up watchers that start in the past
// or fall behind from MVCC history, and queues the responses each stream
// writes to its client.
//
// It must never block the apply loop (the subscriber only appends to a
// bounded queue; on overflow the revisions are dropped there and recovered
// from history), never let one slow stream delay another (a stream whose send
// queue is over its bound has its watchers moved aside to catch up later),
// and never skip, repeat or split a revision for a watcher. It speaks etcd's
// messages (WatchResponse) but not gRPC: the server's Watch service drains
// each stream's queue to the wire and fills the header's member fields.
//
// Guarantees, per watcher (etcd's): ordered, unique, reliable (no gaps: a
// revision it cannot deliver cancels it with compact_revision), atomic (the
// events of one revision go in one response unless the watcher asked for
// fragments), resumable (start revision = last seen + 1), bookmarkable
// (progress responses).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "storage/state_store.h"

namespace ganglion::watch {

// Error texts, word for word as etcd 3.4's mvcc package has them.
inline constexpr char kErrDuplicateWatchId[] =
    "mvcc: duplicate watch ID provided on the WatchStream";
inline constexpr char kErrEmptyWatcherRange[] = "mvcc: watcher range is empty";
inline constexpr char kErrTooManyRequests[] = "etcdserver: too many requests";

struct HubOptions {
  size_t streams_max = 10000;
  size_t watchers_per_stream_max = 10000;
  // A stream whose queued, unwritten responses exceed this is slow: its
  // watchers stop receiving live events and catch up from history once it
  // drains below half of it.
  uint64_t stream_pending_bytes_max = 4 << 20;
  // Hard bound on a stream's queue; beyond it Create fails (a client that
  // creates watchers without reading its responses is cut off).
  uint64_t stream_queue_bytes_hard_max = 64 << 20;
  // Revisions queued from the apply loop to the dispatcher; beyond either
  // bound new revisions are dropped and watchers recover them from history.
  size_t incoming_revisions_max = 8192;
  uint64_t incoming_bytes_max = 64 << 20;
  // Events read from history per catch-up page (whole revisions, at least one).
  uint64_t catchup_events_max = 1000;
  // Catch-up pages per dispatcher round, so live events keep flowing while
  // many watchers catch up.
  int catchup_pages_per_round_max = 8;
  // How often the dispatcher looks at unsynced watchers and progress timers
  // when no revision arrives.
  std::chrono::milliseconds tick{20};
  // etcd's progress_notify interval (10 minutes).
  std::chrono::milliseconds progress_notify_interval{std::chrono::minutes(10)};
  // etcd's --max-request-bytes: responses of watchers that asked for
  // fragments are split to stay under it.
  uint64_t max_request_bytes = 1536 * 1024;
};

struct WatchSpec {
  std::string key;             // "" is read as "\0", the smallest key (as etcd)
  std::string range_end;       // "": the key alone; "\0": every key >= key; else [key, range_end)
  int64_t start_revision = 0;  // 0: from the next revision
  int64_t watch_id = 0;        // 0: chosen by the hub (lowest free id >= 0, as etcd)
  bool progress_notify = false;
  bool filter_put = false;     // NOPUT
  bool filter_delete = false;  // NODELETE
  bool prev_kv = false;
  bool fragment = false;
};

struct HubStats {
  uint64_t streams = 0;
  uint64_t watchers = 0;
  uint64_t slow_watchers = 0;  // unsynced: catching up from history
  uint64_t events_sent_total = 0;
  uint64_t incoming_dropped_revisions_total = 0;
};

class Hub {
 public:
  using StreamId = uint64_t;
  // Called when a stream's queue gets a response while its consumer waits
  // (its last Pop returned false). Runs with the hub lock held: it may call
  // Queue::Pop, must not call any Hub method.
  using ReadyFn = std::function<void()>;

  // A stream's send queue, drained by its consumer (one writer at a time).
  class Queue {
   public:
    // The next response to write, if any. False means the queue is empty and
    // on_ready will be called when it is not. The header carries only the
    // revision; the caller fills the member fields.
    bool Pop(etcdserverpb::WatchResponse* out);
    uint64_t pending_bytes() const { return pending_bytes_.load(std::memory_order_relaxed); }

   private:
    friend class Hub;
    // Returns true if the consumer was waiting (the caller calls on_ready).
    bool Push(etcdserverpb::WatchResponse resp);

    std::mutex mu_;
    // Guarded by mu_; bytes bounded by Hub. A list: an idle stream's empty
    // queue allocates nothing (an empty deque holds a 512-byte block).
    std::list<etcdserverpb::WatchResponse> queue_;
    bool consumer_waiting_ = true;            // guarded by mu_
    std::atomic<uint64_t> pending_bytes_{0};  // written under mu_
  };
  struct StreamRef {
    StreamId id = 0;
    std::shared_ptr<Queue> queue;
  };

  // Subscribes to `store` (which must outlive the Hub or be replaced with
  // ResetStore) and starts the dispatcher thread.
  Hub(std::shared_ptr<storage::StateStore> store, HubOptions options = {});
  ~Hub();  // Stop()s
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Unsubscribes and joins the dispatcher. Streams stay readable; nothing new
  // is queued.
  void Stop();

  // The store was replaced (a snapshot from the leader was installed): every
  // watcher that still needs revisions resumes from the new store's history,
  // or is canceled with compact_revision if its next revision is compacted
  // there. Call on the apply thread, before anything is applied to `store`.
  void ResetStore(std::shared_ptr<storage::StateStore> store);

  // Each applied batch's revisions, in order, from the store's subscriber
  // (the apply thread; the server's one subscriber fans out to the lessor,
  // the key waiters and, last, the hub, which keeps the batch without
  // copying it). Never blocks: appends to a bounded queue or drops revisions
  // for the watchers to recover from history; wakes the dispatcher at most
  // once per batch.
  void Publish(std::vector<storage::RevisionEvents> batch);

  // A client stream. ResourceExhausted beyond streams_max.
  absl::StatusOr<StreamRef> OpenStream(ReadyFn on_ready);
  // Removes the stream and its watchers; on_ready is never called after it
  // returns.
  void CloseStream(StreamId stream);

  // etcd's create request: queues the created response (or a created and
  // canceled one, for a duplicate id or an empty range), then events.
  // Fails (ResourceExhausted) only when the stream's queue is over its hard
  // bound, and NotFound for an unknown stream.
  absl::Status Create(StreamId stream, const WatchSpec& spec);
  // etcd's cancel request: a canceled response if the watcher exists.
  absl::Status Cancel(StreamId stream, int64_t watch_id);
  // etcd's progress request: a response with watch_id -1 and the revision
  // every watcher of the stream has seen up to, once all are synced.
  absl::Status RequestProgress(StreamId stream);

  HubStats Stats() const;
  // The revision the dispatcher has delivered (or knows there is nothing to
  // deliver) up to.
  int64_t live_revision() const;

 private:
  struct Stream;
  // A watcher keeps only what dispatch needs: an idle one is 72 bytes plus
  // its index entries (10,000 of them on one member are the common case).
  struct Watcher {
    Stream* stream = nullptr;
    std::string key;  // "\0" stands for the empty key (as etcd)
    // Null: the key alone. "\0": every key >= key. Else [key, *range_end).
    std::unique_ptr<const std::string> range_end;
    int64_t id = 0;
    int64_t next_rev = 0;  // lowest revision not yet delivered (or skipped)
    uint32_t slot = 0;     // while synced: its place in its dispatch index list
    bool synced = false;
    bool sent_since_progress = false;
    // etcd's create options.
    bool progress_notify : 1 = false;
    bool filter_put : 1 = false;     // NOPUT
    bool filter_delete : 1 = false;  // NODELETE
    bool prev_kv : 1 = false;
    bool fragment : 1 = false;

    bool Matches(const std::string& k) const;
  };
  // A stream's watchers, owned, found by id (8 bytes a slot).
  struct WatcherId {
    using is_transparent = void;
    static int64_t Of(int64_t id) { return id; }
    static int64_t Of(const std::unique_ptr<Watcher>& w) { return w->id; }
    template <typename A>
    size_t operator()(const A& a) const {
      return absl::Hash<int64_t>()(Of(a));
    }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Of(a) == Of(b);
    }
  };
  using WatcherSet = absl::flat_hash_set<std::unique_ptr<Watcher>, WatcherId, WatcherId>;
  struct Stream {
    StreamId id = 0;
    ReadyFn on_ready;
    WatcherSet watchers;
    int64_t next_auto_id = 0;
    // Pop runs on gRPC threads without the hub lock. Lock order: Hub::mu_ ->
    // Queue::mu_.
    std::shared_ptr<Queue> queue;
  };

  void DispatchLoop();
  // Delivers queued live revisions to synced watchers. Holds mu_.
  void DispatchLive(std::deque<storage::RevisionEvents>& revisions, int64_t latest_rev);
  // The previous values of rev's events, read once for every prev_kv watcher
  // of the revision (Apply does not read them). False if they could not be
  // read. Holds mu_.
  bool LoadPrevValues(storage::RevisionEvents* rev);
  // One page of history to eligible unsynced watchers; false if none needed it.
  bool CatchUpOnce();
  void ProgressTick(std::chrono::steady_clock::time_point now);
  void ResetStoreLocked(std::shared_ptr<storage::StateStore> store);
  int64_t NextRev(const Watcher* w) const;
  void IndexSynced(Watcher* w, bool add);
  // Every synced watcher, from the dispatch index (a copy: callers move
  // watchers in and out of the index).
  std::vector<Watcher*> SyncedWatchers() const;
  void MarkUnsynced(Watcher* w);
  void MarkSynced(Watcher* w);
  void RemoveWatcher(Watcher* w);
  // Sends the events of `revisions` (all >= w->next_rev) that pass w's
  // range and filters, in one response (fragmented if asked). Holds mu_.
  void Deliver(Watcher* w, const std::vector<const mvccpb::Event*>& events, int64_t header_rev);
  void Push(Stream* s, etcdserverpb::WatchResponse resp);
  bool Slow(const Stream* s) const;
  bool Drained(const Stream* s) const;

  const HubOptions options_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  std::weak_ptr<storage::StateStore> store_;
  uint64_t store_generation_ = 0;
  std::map<StreamId, std::unique_ptr<Stream>> streams_;  // <= streams_max
  StreamId next_stream_id_ = 1;
  // The streams with a progress request not answered yet: the dispatcher
  // runs after every applied batch and looks only at these, not at every
  // stream.
  std::set<StreamId> progress_requested_;
  // A synced watcher's next revision is implicit: max(next_rev,
  // live_rev_ + 1) (NextRev), so a revision costs work only for the
  // watchers it matches, not for every synced watcher. Synced watchers are
  // known by their flag and the dispatch index below; unsynced ones are
  // kept here (open addressing: ~10-20 bytes per watcher, a tree node is 48).
  absl::flat_hash_set<Watcher*> unsynced_;
  // The synced watchers, indexed for dispatch: single-key watchers by key,
  // the rest (ranges, prefixes) in one list checked per revision. Every synced
  // watcher is in exactly one of them. Guarded by mu_.
  // Lists, not sets: a watcher knows its slot, so removal swaps the last one
  // in, and a key with one or two watchers allocates nothing beyond its map
  // entry.
  using WatcherList = absl::InlinedVector<Watcher*, 2>;
  absl::flat_hash_map<std::string, WatcherList> synced_by_key_;
  std::vector<Watcher*> synced_ranges_;
  std::chrono::steady_clock::time_point next_progress_at_;
  // Every revision <= live_rev_ was delivered to the synced watchers (or
  // none of them needed it). Synced watchers: next_rev > live_rev_.
  // Unsynced: next_rev <= live_rev_.
  int64_t live_rev_ = 0;

  // The incoming queue from the apply loop. Guarded by in_mu_, which the
  // apply loop holds only to append (never mu_). Lock order: mu_ -> in_mu_.
  mutable std::mutex in_mu_;
  std::condition_variable in_cv_;                 // wakes the dispatcher; with in_mu_
  std::deque<storage::RevisionEvents> incoming_;  // <= incoming_revisions_max
  uint64_t incoming_bytes_ = 0;                   // <= incoming_bytes_max
  // The last revision the store applied, queued or not.
  int64_t latest_rev_ = 0;
  bool stop_ = false;
  bool kick_ = false;  // a watcher needs catch-up now

  std::atomic<uint64_t> watcher_count_{0};
  std::atomic<uint64_t> events_sent_total_{0};
  std::atomic<uint64_t> dropped_revisions_total_{0};

  std::thread dispatcher_;
  std::atomic<bool> stopped_{false};
};

}  // namespace ganglion::watch
