#include "orchestrator/scheduler/scheduler.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "absl/time/clock.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator::scheduler {

ReconcilerSpec SchedulerSpec(SchedulerOptions options) {
  ReconcilerSpec spec;
  spec.name = "scheduler";
  spec.workers = 1;  // one decision at a time: each sees every earlier one
  spec.queue.backoff_base = options.backoff_base;
  spec.queue.backoff_max = options.backoff_max;
  spec.queue.keys_max = options.pending_pods_max;
  spec.make = [options](ReconcileContext& ctx) {
    return std::make_unique<Scheduler>(ctx, options);
  };
  return spec;
}

// --- writers ---

Scheduler::Writers::Writers(int threads) : max_(static_cast<size_t>(std::max(1, threads))) {
  for (size_t i = 0; i < max_; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "sched-write");
      for (;;) {
        std::function<void()> write;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
          if (stop_) return;
          write = std::move(queue_.front());
          queue_.pop_front();
          ++running_;
        }
        write();
        {
          std::lock_guard<std::mutex> lock(mu_);
          --running_;
        }
        cv_.notify_all();
      }
    });
  }
}

Scheduler::Writers::~Writers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();  // not started: the term is over, they would be fenced anyway
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void Scheduler::Writers::Submit(std::function<void()> write) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stop_ || queue_.size() + running_ < max_; });
  if (stop_) return;
  queue_.push_back(std::move(write));
  cv_.notify_all();
}

// --- the reconciler ---

Scheduler::Scheduler(ReconcileContext& ctx, SchedulerOptions options)
    : ctx_(ctx),
      options_(options),
      writers_(std::make_unique<Writers>(options.writes_in_flight_max)) {}

Scheduler::~Scheduler() {
  writers_.reset();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::Setup(ReconcileContext& ctx) {
  nodes_ = &ctx.Cache("", "nodes");
  pods_ = &ctx.Cache("", "pods");
  nodes_->AddHandlers({[this](const ObjectPtr& n) { OnNode(*n); },
                       [this](const ObjectPtr&, const ObjectPtr& n) { OnNode(*n); },
                       [this](const ObjectPtr& n) { OnNodeDeleted(*n); }});
  pods_->AddHandlers({[this](const ObjectPtr& p) { OnPod(*p, true); },
                      [this](const ObjectPtr& before, const ObjectPtr& after) {
                        const Json* was = Find(*before, {"spec"});
                        const Json* is = Find(*after, {"spec"});
                        OnPod(*after, !was || !is || *was != *is);
                      },
                      [this](const ObjectPtr& p) { OnPodDeleted(*p); }});
}

bool Scheduler::ApplyPodLocked(const Json& pod) {
  const std::string key = ObjectKey(pod);
  const Json* node = Find(pod, {"spec", "nodeName"});
  if (!node || !node->is_string() || node->get<std::string>().empty()) return false;
  if (IsTerminated(pod)) return state_.Uncount(key);
  const std::string node_name = node->get<std::string>();
  const Json* uid_at = Find(pod, {"metadata", "uid"});
  const std::string uid = uid_at && uid_at->is_string() ? uid_at->get<std::string>() : "";
  unschedulable_.erase(key);
  if (state_.IsCountedBound(key, node_name, uid)) return false;
  auto info = ParsePod(pod);
  PodUsage usage;
  if (info.ok()) {
    usage = std::move(info->usage);
  } else {
    usage.uid = uid;  // bound by someone else with requests we cannot read: a slot at least
    usage.requests.pods = 1;
  }
  state_.CountBound(key, node_name, std::move(usage));
  return false;
}

void Scheduler::RequeueUnschedulableLocked() {
  // Each goes back once: a burst of node events (a thousand nodes joining)
  // costs one pass, not one per event. A pod that still does not fit comes
  // back into the set from Reconcile.
  for (const std::string& key : unschedulable_) ctx_.queue().Add(key);
  unschedulable_.clear();
}

void Scheduler::OnPod(const Json& pod, bool spec_changed) {
  const std::string key = ObjectKey(pod);
  std::lock_guard<std::mutex> lock(mu_);
  if (ApplyPodLocked(pod)) RequeueUnschedulableLocked();
  if (!WantsScheduling(pod)) return;
  // A pod that did not fit waits for its back-off or a change that may help,
  // not for the status write it caused.
  if (spec_changed || unschedulable_.count(key) == 0) ctx_.queue().Add(key);
}

void Scheduler::OnPodDeleted(const Json& pod) {
  const std::string key = ObjectKey(pod);
  std::lock_guard<std::mutex> lock(mu_);
  unschedulable_.erase(key);
  if (state_.Uncount(key)) RequeueUnschedulableLocked();
}

void Scheduler::OnNode(const Json& node) {
  auto info = ParseNode(node);
  std::lock_guard<std::mutex> lock(mu_);
  if (!info.ok()) {
    spdlog::warn("event=scheduler_node_ignored error=\"{}\"", std::string(info.status().message()));
    state_.RemoveNode(ObjectKey(node));
    return;
  }
  if (state_.UpsertNode(*std::move(info))) RequeueUnschedulableLocked();
}

void Scheduler::OnNodeDeleted(const Json& node) {
  std::lock_guard<std::mutex> lock(mu_);
  state_.RemoveNode(ObjectKey(node));
}

absl::Status Scheduler::Reconcile(const std::string& key) {
  ObjectPtr pod = pods_->Get(key);
  if (!pod || !WantsScheduling(*pod)) {
    std::lock_guard<std::mutex> lock(mu_);
    unschedulable_.erase(key);
    return absl::OkStatus();
  }
  auto info = ParsePod(*pod);
  std::string node, message;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.IsAssumed(key)) return absl::OkStatus();  // its bind is in flight
    if (!info.ok()) {
      message = std::string(info.status().message());
    } else {
      ClusterState::Decision d = state_.Schedule(*info);
      if (!d.node.empty()) {
        node = d.node;
        state_.Assume(key, node, info->usage);
        unschedulable_.erase(key);
        stats_.decisions_total++;
      } else {
        message = UnschedulableMessage(state_.nodes(), d.reasons);
      }
    }
    if (node.empty()) {
      unschedulable_.insert(key);
      stats_.unschedulable_total++;
    }
  }
  if (!node.empty()) {
    Bind(pod, node);
    return absl::OkStatus();
  }
  ReportUnschedulable(pod, message);
  // Not an error of ours: FailedPrecondition retries with back-off, quietly.
  return absl::FailedPreconditionError(message);
}

void Scheduler::Bind(const ObjectPtr& pod, const std::string& node) {
  writers_->Submit([this, pod, node] {
    const Json* meta = Find(*pod, {"metadata"});
    const std::string ns = StringAt(*meta, "namespace"), name = StringAt(*meta, "name");
    const std::string uid = StringAt(*meta, "uid");
    const std::string key = ObjectKey(ns, name);
    absl::Status st = ctx_.client().Bind(ns, name, uid, node);
    if (st.ok()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_.ForgetAssumed(key, uid);
      stats_.binds_failed_total++;
    }
    // Fenced (the term ended) or the pod is gone: nothing left to do.
    if (absl::IsFailedPrecondition(st) || absl::IsNotFound(st)) return;
    spdlog::info("event=scheduler_bind_failed pod={} node={} error=\"{}\"", key, node,
                 std::string(st.message()));
    ctx_.queue().AddRateLimited(key);
  });
}

void Scheduler::ReportUnschedulable(const ObjectPtr& pod, const std::string& message) {
  if (const Json* conditions = Find(*pod, {"status", "conditions"});
      conditions && conditions->is_array()) {
    for (const Json& c : *conditions) {
      if (StringAt(c, "type") == "PodScheduled" && StringAt(c, "status") == "False" &&
          StringAt(c, "reason") == "Unschedulable" && StringAt(c, "message") == message) {
        return;  // already says so
      }
    }
  }
  const std::string key = ObjectKey(*pod);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reporting_.insert(key).second) return;  // a write is in flight; retried later
  }
  writers_->Submit([this, pod, message, key] {
    Json next = *pod;
    const std::string now =
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
    Json condition = {{"type", "PodScheduled"},    {"status", "False"},
                      {"reason", "Unschedulable"}, {"message", message},
                      {"lastProbeTime", nullptr},  {"lastTransitionTime", now}};
    Json& conditions = next["status"]["conditions"];
    if (!conditions.is_array()) conditions = Json::array();
    bool replaced = false;
    for (Json& c : conditions) {
      if (StringAt(c, "type") != "PodScheduled") continue;
      // The transition time moves only when the status does.
      if (StringAt(c, "status") == "False" && c.contains("lastTransitionTime")) {
        condition["lastTransitionTime"] = c["lastTransitionTime"];
      }
      c = condition;
      replaced = true;
    }
    if (!replaced) conditions.push_back(condition);
    auto written = ctx_.client().Update(TypeOf("", "pods"), next, "status");
    if (written.ok()) {
      absl::Status ev = ctx_.client().RecordEvent(*written, "Warning", "FailedScheduling", message);
      if (!ev.ok() && !absl::IsFailedPrecondition(ev)) {
        spdlog::info("event=scheduler_event_failed pod={} error=\"{}\"", key,
                     std::string(ev.message()));
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    reporting_.erase(key);
    if (written.ok()) stats_.conditions_written_total++;
  });
}

}  // namespace ganglion::orchestrator::scheduler
