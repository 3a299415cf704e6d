// The scheduler: a reconciler (run by the ReconcilerHost, so only on the
// leader) that binds pending pods to nodes. A pod is its business when it has
// no spec.nodeName, no deletionTimestamp, has not finished, and names no
// scheduler or "default-scheduler".
//
// Decisions are taken one at a time (one worker) over ClusterState: filter
// every node, score those that pass, pick the best. The chosen node counts
// the pod at once ("assumed"), and the bind (POST pods/<name>/binding with
// the pod's uid) runs on a pool of writers, several in flight, so throughput
// is not one Raft round-trip per pod. A failed bind drops the assumption and
// retries the pod with back-off; the cache showing the pod bound replaces it.
//
// A pod no node fits gets PodScheduled=False, reason Unschedulable, with a
// message naming why each node was refused, and a Warning event
// FailedScheduling, both only when that message changes. It is retried at
// once when a node appears or changes in a way the filters see, or when a
// bound pod is deleted or finishes; otherwise with back-off.
//
// It must never bind a pod twice, never bind more onto a node than its
// allocatable room, and never write a status or event when nothing changed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/reconcile/host.h"
#include "orchestrator/scheduler/cluster_state.h"

namespace ganglion::orchestrator::scheduler {

struct SchedulerOptions {
  // Writes (binds, status updates, events) running or waiting at once; a
  // decision waits for a free writer, so at most this many binds are in
  // flight.
  int writes_in_flight_max = 64;
  // Pods waiting for a decision (the work queue's bound; one pod is decided
  // per Reconcile). Beyond it a pod is picked up again on its next change.
  size_t pending_pods_max = 1 << 18;
  // Back-off of a pod that did not fit or whose bind failed. Every change
  // that can make a pod fit (a node added or changed, a bound pod deleted or
  // finished) retries it at once, so the back-off only bounds the churn.
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(60);
};

// The registration the orchestrator's built-in list uses ("scheduler").
ReconcilerSpec SchedulerSpec(SchedulerOptions options = {});

struct SchedulerStats {
  uint64_t decisions_total = 0;      // pods a node was chosen for
  uint64_t unschedulable_total = 0;  // attempts that found no node
  uint64_t binds_failed_total = 0;
  uint64_t conditions_written_total = 0;
};

class Scheduler : public Reconciler {
 public:
  Scheduler(ReconcileContext& ctx, SchedulerOptions options);
  ~Scheduler() override;  // waits for the writes in flight

  void Setup(ReconcileContext& ctx) override;
  absl::Status Reconcile(const std::string& key) override;

  SchedulerStats stats() const;

 private:
  // Bounded writers: Submit blocks while writes_in_flight_max run or wait.
  class Writers {
   public:
    explicit Writers(int threads);
    ~Writers();
    void Submit(std::function<void()> write);

   private:
    const size_t max_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> queue_;  // guarded by mu_
    size_t running_ = 0;                       // guarded by mu_
    bool stop_ = false;                        // guarded by mu_
    std::vector<std::thread> threads_;
  };

  // Cache handlers (the watch thread).
  void OnPod(const Json& pod, bool spec_changed);
  void OnPodDeleted(const Json& pod);
  void OnNode(const Json& node);
  void OnNodeDeleted(const Json& node);
  // Counts a pod the cache shows bound; true if one stopped counting (finished).
  bool ApplyPodLocked(const Json& pod);
  void RequeueUnschedulableLocked();

  void Bind(const ObjectPtr& pod, const std::string& node);
  // Writes the Unschedulable condition and event, unless already so.
  void ReportUnschedulable(const ObjectPtr& pod, const std::string& message);

  ReconcileContext& ctx_;
  const SchedulerOptions options_;
  ObjectCache* pods_ = nullptr;
  ObjectCache* nodes_ = nullptr;

  mutable std::mutex mu_;
  ClusterState state_;                   // guarded by mu_
  std::set<std::string> unschedulable_;  // guarded by mu_; pod keys that did not fit
  std::set<std::string> reporting_;      // guarded by mu_; condition writes in flight
  SchedulerStats stats_;                 // guarded by mu_

  // Last: destroyed first, so no write outlives what it touches.
  std::unique_ptr<Writers> writers_;
};

}  // namespace ganglion::orchestrator::scheduler
