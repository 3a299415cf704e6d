// The reconciler host: runs the orchestrator's reconcilers (scheduler,
// ReplicaSet, Deployment, ...) inside the `ganglion` process of the current
// Raft leader only. The server tells it when this member starts leading a
// term (after it applied an entry of that term) and when it stops; the host
// then starts, or at once stops, every registered reconciler.
//
// While leading, each reconciler gets its own de-duplicating, back-off work
// queue of object keys and a number of workers that call Reconcile(key),
// reading from caches shared by every reconciler of the term and writing
// through an ObjectClient fenced by the term: once the member steps down, a
// write from the old term fails before reaching the store (and any write
// that raced the step-down is still a compare-and-swap on what it read).
//
// It must never run a reconciler on a member that is not leading, never run
// two terms' reconcilers at once, and never block the thread that reports
// leadership (the raft and apply threads).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/object_cache.h"
#include "orchestrator/reconcile/object_client.h"
#include "orchestrator/reconcile/work_queue.h"
#include "orchestrator/storage/object_store.h"

namespace ganglion::orchestrator {

class ReconcileContext;

// One reconciler. Setup registers handlers on the caches it reads that turn
// changes into keys on ctx.queue(); Reconcile(key) reads the current state
// from the caches, compares it with what the object asks for and writes what
// closes the gap. It is level-triggered and idempotent: called twice for the
// same state it writes nothing the second time. An error requeues the key
// with back-off; OK forgets its back-off.
class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual void Setup(ReconcileContext& ctx) = 0;
  virtual absl::Status Reconcile(const std::string& key) = 0;
};

struct ReconcilerSpec {
  std::string name;  // "scheduler", "replicaset", ...
  int workers = 1;
  WorkQueueOptions queue;
  // Makes the reconciler for one term; it may keep `ctx` for the term.
  std::function<std::unique_ptr<Reconciler>(ReconcileContext& ctx)> make;
};

// What a reconciler has for one term.
class ReconcileContext {
 public:
  // The shared cache of `group`/`plural` (e.g. "apps"/"replicasets"),
  // created on first ask; ask during Setup (caches start after every Setup).
  ObjectCache& Cache(const std::string& group, const std::string& plural);
  ObjectClient& client() { return client_; }
  WorkQueue& queue() { return queue_; }
  const std::string& name() const { return name_; }
  uint64_t term() const { return term_; }
  // False once the term's leadership ended: long loops should stop early.
  bool active() const { return active_->load(); }

 private:
  friend class ReconcilerHost;
  struct Caches {
    std::mutex mu;
    std::map<std::string, std::unique_ptr<ObjectCache>> by_type;  // guarded by mu
    ObjectStore* store = nullptr;
  };
  ReconcileContext(std::string name, uint64_t term, Caches& caches, ApiHandler& api,
                   std::shared_ptr<std::atomic<bool>> active, WorkQueueOptions queue);

  const std::string name_;
  const uint64_t term_;
  Caches& caches_;
  std::shared_ptr<std::atomic<bool>> active_;
  ObjectClient client_;
  WorkQueue queue_;
};

struct HostStats {
  bool leading = false;
  uint64_t term = 0;
  int reconcilers_running = 0;
  uint64_t reconciles_total = 0;
  uint64_t reconcile_errors_total = 0;
  uint64_t terms_led_total = 0;
  // Wall-clock times in the current (or last) term; InfinitePast if none.
  absl::Time leading_since = absl::InfinitePast();
  absl::Time first_reconcile_at = absl::InfinitePast();
};

class ReconcilerHost {
 public:
  // `store` feeds the caches; `api` takes the writes (both over this member).
  ReconcilerHost(ObjectStore& store, ApiHandler& api);
  ~ReconcilerHost();  // Stop()s
  ReconcilerHost(const ReconcilerHost&) = delete;
  ReconcilerHost& operator=(const ReconcilerHost&) = delete;

  // Before the first SetLeading.
  void Register(ReconcilerSpec spec);

  // From the server's leadership observer: never blocks. leading=false stops
  // the current term's writes at once (fenced) and its workers soon after.
  void SetLeading(bool leading, uint64_t term);
  // Stops everything and joins the host thread.
  void Stop();

  HostStats stats() const;

 private:
  struct Term;
  void Run();  // the host thread: starts and stops terms
  std::unique_ptr<Term> StartTerm(uint64_t term);
  void StopTerm(std::unique_ptr<Term> term);

  ObjectStore& store_;
  ApiHandler& api_;
  std::vector<ReconcilerSpec> specs_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t want_term_ = 0;  // guarded by mu_; 0: not leading
  bool stop_ = false;       // guarded by mu_
  // The running term's fence; flipped under mu_ by SetLeading(false).
  std::shared_ptr<std::atomic<bool>> active_;  // guarded by mu_
  HostStats stats_;                            // guarded by mu_

  std::thread thread_;
};

}  // namespace ganglion::orchestrator
