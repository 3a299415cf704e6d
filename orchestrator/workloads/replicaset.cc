// The ReplicaSet reconciler: claims the pods its selector matches, creates
// or deletes pods until spec.replicas are active (never while the cache has
// not yet shown its previous creations and deletions), and reports what it
// saw in status through the status subresource.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "orchestrator/api/selectors.h"
#include "orchestrator/types/validation.h"
#include "orchestrator/workloads/claim.h"
#include "orchestrator/workloads/expectations.h"
#include "orchestrator/workloads/objects.h"
#include "orchestrator/workloads/workloads.h"

namespace ganglion::orchestrator::workloads {

namespace {

// Calls `create` `count` times in batches of 1, 2, 4, ... (at most
// `parallel_max` at once), Kubernetes' slow start: a batch with a failure
// ends it, so a ReplicaSet whose pods are refused (a quota, a bad template)
// makes a few doomed writes, not hundreds. Returns how many calls were made;
// `first_error` gets the first failure.
int SlowStartBatches(int count, int parallel_max, const std::function<absl::Status()>& create,
                     absl::Status* first_error) {
  int made = 0;
  std::mutex mu;
  for (int batch = 1; made < count; batch = std::min(batch * 2, parallel_max)) {
    const int n = std::min(batch, count - made);
    std::vector<std::thread> threads;
    threads.reserve(n - 1);
    auto one = [&] {
      absl::Status st = create();
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error->ok()) *first_error = st;
      }
    };
    for (int i = 1; i < n; ++i) threads.emplace_back(one);
    one();
    for (std::thread& t : threads) t.join();
    made += n;
    if (!first_error->ok()) break;
  }
  return made;
}

// Pods become available within this much of the computed instant; the key
// comes back a little after it so the pod is past the threshold.
constexpr absl::Duration kAvailabilitySlack = absl::Milliseconds(100);

// The key of the ReplicaSet that controls `pod`, or "" when none does.
std::string OwnerKey(const Json& pod) {
  const Json* ref = ControllerRef(pod);
  if (ref == nullptr || StringAt(*ref, "kind") != "ReplicaSet") return "";
  return ObjectKey(NamespaceOf(pod), StringAt(*ref, "name"));
}

bool LabelsDiffer(const Json& a, const Json& b) {
  const Json* la = Find(a, {"metadata", "labels"});
  const Json* lb = Find(b, {"metadata", "labels"});
  if ((la == nullptr) != (lb == nullptr)) return true;
  return la != nullptr && *la != *lb;
}

bool ActivePod(const Json& pod) {
  return IsPodActive(pod);
}

class ReplicaSetReconciler : public Reconciler {
 public:
  explicit ReplicaSetReconciler(const WorkloadOptions& options)
      : options_(options), expectations_(options.now, options.expectations_timeout) {}

  void Setup(ReconcileContext& ctx) override {
    ctx_ = &ctx;
    replica_sets_ = &ctx.Cache("apps", "replicasets");
    pods_ = &ctx.Cache("", "pods");
    pods_->AddIndex(kByControllerUid, ControllerUidValues);
    WorkQueue& q = ctx.queue();
    replica_sets_->AddHandlers(
        {[&q](const ObjectPtr& rs) { q.Add(ObjectKey(*rs)); },
         [&q](const ObjectPtr&, const ObjectPtr& rs) { q.Add(ObjectKey(*rs)); },
         [&q](const ObjectPtr& rs) { q.Add(ObjectKey(*rs)); }});
    pods_->AddHandlers(
        {[this](const ObjectPtr& pod) { OnPodAdded(*pod); },
         [this](const ObjectPtr& before, const ObjectPtr& after) { OnPodUpdated(*before, *after); },
         [this](const ObjectPtr& pod) { OnPodDeleted(*pod); }});
  }

  absl::Status Reconcile(const std::string& key) override;

 private:
  void OnPodAdded(const Json& pod) {
    const std::string owner = OwnerKey(pod);
    if (owner.empty()) return EnqueueMatching(pod);
    if (IsTerminating(pod)) {
      expectations_.DeletionObserved(owner, ObjectKey(pod));
    } else {
      expectations_.CreationObserved(owner);
    }
    ctx_->queue().Add(owner);
  }

  void OnPodUpdated(const Json& before, const Json& after) {
    const std::string old_owner = OwnerKey(before);
    const std::string owner = OwnerKey(after);
    if (!IsTerminating(before) && IsTerminating(after) && !owner.empty()) {
      // A pod being deleted no longer counts: that is the deletion we expected.
      expectations_.DeletionObserved(owner, ObjectKey(after));
    }
    if (old_owner != owner && !old_owner.empty()) ctx_->queue().Add(old_owner);
    if (!owner.empty()) {
      ctx_->queue().Add(owner);
    } else if (LabelsDiffer(before, after) || !old_owner.empty()) {
      EnqueueMatching(after);
    }
  }

  void OnPodDeleted(const Json& pod) {
    const std::string owner = OwnerKey(pod);
    if (owner.empty()) return;
    expectations_.DeletionObserved(owner, ObjectKey(pod));
    ctx_->queue().Add(owner);
  }

  // An orphan: every ReplicaSet of its namespace whose selector matches may adopt it.
  void EnqueueMatching(const Json& pod) {
    if (!IsPodActive(pod)) return;
    for (const ObjectPtr& rs : replica_sets_->List(NamespaceOf(pod))) {
      const Json* selector = Find(*rs, {"spec", "selector"});
      if (selector == nullptr) continue;
      auto s = LabelSelector::FromJson(*selector);
      if (s.ok() && !s->empty() && s->Matches(Find(pod, {"metadata", "labels"}))) {
        ctx_->queue().Add(ObjectKey(*rs));
      }
    }
  }

  absl::Status ManageReplicas(const std::string& key, const Json& rs, std::vector<ObjectPtr>& pods);
  absl::Status UpdateStatus(const std::string& key, const Json& rs,
                            const std::vector<ObjectPtr>& pods, const absl::Status& managed);

  // Fixed once Setup returns but for expectations_, which locks itself.
  const WorkloadOptions options_;
  Expectations expectations_;
  ReconcileContext* ctx_ = nullptr;
  ObjectCache* replica_sets_ = nullptr;
  ObjectCache* pods_ = nullptr;
  const ResourceType& rs_type_ = TypeOf("apps", "replicasets");
  const ResourceType& pod_type_ = TypeOf("", "pods");
};

absl::Status ReplicaSetReconciler::Reconcile(const std::string& key) {
  ObjectPtr rs = replica_sets_->Get(key);
  if (!rs) {
    expectations_.Forget(key);
    return absl::OkStatus();
  }
  const Json* selector_json = Find(*rs, {"spec", "selector"});
  auto selector = LabelSelector::FromJson(selector_json ? *selector_json : Json());
  if (!selector.ok() || selector->empty()) {
    // Validation refuses such an object; nothing sensible can be owned by it.
    spdlog::warn("event=replicaset_bad_selector key={} error=\"{}\"", key,
                 selector.ok() ? "empty selector" : selector.status().ToString());
    return absl::OkStatus();
  }
  // Decide on expectations before reading pods: a pod observed after this
  // point is in the list or will bring the key back.
  const bool may_manage = expectations_.Satisfied(key);
  std::vector<ObjectPtr> candidates;
  for (const ObjectPtr& pod : pods_->List(NamespaceOf(*rs))) {
    if (IsPodActive(*pod)) candidates.push_back(pod);
  }
  ClaimRequest claim{&rs_type_, rs.get(), &*selector, &pod_type_, ActivePod};
  auto claimed = Claim(ctx_->client(), claim, candidates);
  if (!claimed.ok()) return claimed.status();
  absl::Status managed;
  if (may_manage && !IsTerminating(*rs)) managed = ManageReplicas(key, *rs, *claimed);
  absl::Status status = UpdateStatus(key, *rs, *claimed, managed);
  if (!managed.ok()) return managed;
  return status;
}

absl::Status ReplicaSetReconciler::ManageReplicas(const std::string& key, const Json& rs,
                                                  std::vector<ObjectPtr>& pods) {
  const int64_t want = SpecReplicas(rs);
  const int64_t diff = static_cast<int64_t>(pods.size()) - want;
  if (diff < 0) {
    const int count = static_cast<int>(std::min<int64_t>(-diff, options_.burst_replicas_max));
    const Json& tmpl = rs["spec"]["template"];
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"generateName", absl::StrCat(NameOf(rs), "-")},
                  {"namespace", NamespaceOf(rs)},
                  {"ownerReferences", Json::array({ControllerRefTo(rs)})}}},
                {"spec", tmpl.value("spec", Json::object())}};
    if (const Json* meta = Find(tmpl, {"metadata"})) {
      for (const char* field : {"labels", "annotations"}) {
        if (meta->contains(field)) pod["metadata"][field] = (*meta)[field];
      }
    }
    expectations_.ExpectCreations(key, count);
    absl::Status first_error;
    const int made = SlowStartBatches(
        count, options_.creates_in_flight_max,
        [&]() -> absl::Status {
          auto created = ctx_->client().Create(pod_type_, pod);
          // A pod that was not created will not appear: stop waiting for it.
          if (!created.ok()) expectations_.CreationObserved(key);
          return created.status();
        },
        &first_error);
    // Nor will the ones never attempted.
    for (int j = made; j < count; ++j) expectations_.CreationObserved(key);
    if (!first_error.ok()) {
      return absl::Status(first_error.code(), absl::StrCat("creating a pod for ReplicaSet ", key,
                                                           ": ", first_error.message()));
    }
    return absl::OkStatus();
  }
  if (diff > 0) {
    const size_t count = static_cast<size_t>(std::min<int64_t>(diff, options_.burst_replicas_max));
    std::sort(pods.begin(), pods.end(),
              [](const ObjectPtr& a, const ObjectPtr& b) { return DeletesBefore(*a, *b); });
    std::vector<std::string> victims;
    for (size_t i = 0; i < count; ++i) victims.push_back(ObjectKey(*pods[i]));
    expectations_.ExpectDeletions(key, victims);
    absl::Status first_error;
    for (size_t i = 0; i < count; ++i) {
      DeleteOptions options;
      options.uid = UidOf(*pods[i]);  // never a pod that replaced it under the same name
      absl::Status st =
          ctx_->client().Delete(pod_type_, NamespaceOf(*pods[i]), NameOf(*pods[i]), options);
      if (!st.ok()) {
        expectations_.DeletionObserved(key, victims[i]);
        if (!absl::IsNotFound(st) && first_error.ok()) {
          first_error = absl::Status(st.code(),
                                     absl::StrCat("deleting pod ", victims[i], ": ", st.message()));
        }
      }
    }
    return first_error;
  }
  return absl::OkStatus();
}

absl::Status ReplicaSetReconciler::UpdateStatus(const std::string& key, const Json& rs,
                                                const std::vector<ObjectPtr>& pods,
                                                const absl::Status& managed) {
  const absl::Time now = options_.now();
  const int64_t min_ready_seconds = IntAt(rs["spec"], "minReadySeconds", 0);
  const Json* template_labels = Find(rs, {"spec", "template", "metadata", "labels"});
  int64_t fully_labeled = 0, ready = 0, available = 0;
  absl::Duration next_available = absl::InfiniteDuration();
  for (const ObjectPtr& pod : pods) {
    const Json* labels = Find(*pod, {"metadata", "labels"});
    bool all = true;
    if (template_labels != nullptr && template_labels->is_object()) {
      for (auto& [k, v] : template_labels->items()) {
        if (labels == nullptr || !labels->is_object() || !labels->contains(k) ||
            (*labels)[k] != v) {
          all = false;
          break;
        }
      }
    }
    if (all) ++fully_labeled;
    if (IsPodReady(*pod)) {
      ++ready;
      if (IsPodAvailable(*pod, min_ready_seconds, now)) {
        ++available;
      } else {
        next_available = std::min(next_available, UntilAvailable(*pod, min_ready_seconds, now));
      }
    }
  }
  if (next_available != absl::InfiniteDuration()) {
    ctx_->queue().AddAfter(key, next_available + kAvailabilitySlack);
  }
  Json status = rs.value("status", Json::object());
  if (!status.is_object()) status = Json::object();
  status["replicas"] = static_cast<int64_t>(pods.size());
  status["fullyLabeledReplicas"] = fully_labeled;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["observedGeneration"] = GenerationOf(rs);
  // ReplicaFailure says a create or delete failed for a reason other than a
  // conflict or losing leadership; it goes once one succeeds.
  Json conditions = Json::array();
  const Json* old_conditions = Find(status, {"conditions"});
  const Json* old_failure = nullptr;
  if (old_conditions != nullptr && old_conditions->is_array()) {
    for (const Json& c : *old_conditions) {
      if (StringAt(c, "type") == "ReplicaFailure") {
        old_failure = &c;
      } else {
        conditions.push_back(c);
      }
    }
  }
  const bool failed = !managed.ok() && !absl::IsAborted(managed) &&
                      !absl::IsFailedPrecondition(managed) && !absl::IsNotFound(managed);
  if (failed) {
    const std::string reason =
        SpecReplicas(rs) > static_cast<int64_t>(pods.size()) ? "FailedCreate" : "FailedDelete";
    const std::string message(managed.message());
    if (old_failure != nullptr && StringAt(*old_failure, "reason") == reason &&
        StringAt(*old_failure, "message") == message) {
      conditions.push_back(*old_failure);
    } else {
      conditions.push_back({{"type", "ReplicaFailure"},
                            {"status", "True"},
                            {"reason", reason},
                            {"message", message},
                            {"lastTransitionTime", Rfc3339(now)}});
    }
  } else if (old_failure != nullptr && !managed.ok()) {
    conditions.push_back(*old_failure);  // unknown yet whether it is resolved
  }
  if (conditions.empty()) {
    status.erase("conditions");
  } else {
    status["conditions"] = conditions;
  }
  if (rs.contains("status") && rs["status"] == status) return absl::OkStatus();
  Json next = rs;
  next["status"] = status;
  auto written = ctx_->client().Update(rs_type_, next, "status");
  if (!written.ok()) {
    return absl::Status(
        written.status().code(),
        absl::StrCat("updating the status of ReplicaSet ", key, ": ", written.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

ReconcilerSpec ReplicaSetReconcilerSpec(WorkloadOptions options) {
  ReconcilerSpec spec;
  spec.name = "replicaset";
  spec.workers = options.workers;
  spec.make = [options](ReconcileContext&) {
    return std::make_unique<ReplicaSetReconciler>(options);
  };
  return spec;
}

}  // namespace ganglion::orchestrator::workloads
