// The Deployment reconciler: claims the replica sets its selector matches,
// finds (or creates) the one for the current template, numbers revisions,
// moves pods over with the strategy's steps (rollout.cc), scales sets in
// proportion when spec.replicas changes, trims history, and reports status
// and the Progressing/Available conditions that `kubectl rollout status`
// reads. Every write is a compare-and-swap on what was read; after writing it
// waits for its caches to show the write, so its next decision is never taken
// on a state older than its own last step.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/api/selectors.h"
#include "orchestrator/types/validation.h"
#include "orchestrator/workloads/claim.h"
#include "orchestrator/workloads/objects.h"
#include "orchestrator/workloads/revision.h"
#include "orchestrator/workloads/rollout.h"
#include "orchestrator/workloads/workloads.h"

namespace ganglion::orchestrator::workloads {

namespace {

// Condition reasons, as Kubernetes names them.
constexpr char kNewReplicaSetCreated[] = "NewReplicaSetCreated";
constexpr char kFoundNewReplicaSet[] = "FoundNewReplicaSet";
constexpr char kReplicaSetUpdated[] = "ReplicaSetUpdated";
constexpr char kNewReplicaSetAvailable[] = "NewReplicaSetAvailable";
constexpr char kProgressDeadlineExceeded[] = "ProgressDeadlineExceeded";
constexpr char kReplicaSetCreateError[] = "ReplicaSetCreateError";
constexpr char kDeploymentPaused[] = "DeploymentPaused";
constexpr char kDeploymentResumed[] = "DeploymentResumed";
constexpr char kMinimumReplicasAvailable[] = "MinimumReplicasAvailable";
constexpr char kMinimumReplicasUnavailable[] = "MinimumReplicasUnavailable";
// progressDeadlineSeconds at this value means "no deadline".
constexpr int64_t kNoProgressDeadline = 2147483647;
// Bound on waiting for the caches to show this reconcile's own writes.
constexpr absl::Duration kOwnWritesWait = absl::Seconds(5);
constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(500);

std::string DeploymentKeyOf(const Json& rs) {
  const Json* ref = ControllerRef(rs);
  if (ref == nullptr || StringAt(*ref, "kind") != "Deployment") return "";
  return ObjectKey(NamespaceOf(rs), StringAt(*ref, "name"));
}

bool HasProgressDeadline(const Json& d) {
  const Json* spec = Find(d, {"spec"});
  return spec && spec->contains("progressDeadlineSeconds") &&
         IntAt(*spec, "progressDeadlineSeconds", kNoProgressDeadline) != kNoProgressDeadline;
}

bool IsPaused(const Json& d) {
  const Json* spec = Find(d, {"spec"});
  return spec && spec->value("paused", false) == true;
}

// --- conditions ---

const Json* GetCondition(const Json& status, const std::string& type) {
  const Json* conditions = Find(status, {"conditions"});
  if (conditions == nullptr || !conditions->is_array()) return nullptr;
  for (const Json& c : *conditions) {
    if (StringAt(c, "type") == type) return &c;
  }
  return nullptr;
}

void RemoveCondition(Json& status, const std::string& type) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return;
  Json kept = Json::array();
  for (const Json& c : status["conditions"]) {
    if (StringAt(c, "type") != type) kept.push_back(c);
  }
  status["conditions"] = kept;
}

Json NewCondition(const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message, absl::Time now) {
  return {{"type", type},
          {"status", status},
          {"reason", reason},
          {"message", message},
          {"lastUpdateTime", Rfc3339(now)},
          {"lastTransitionTime", Rfc3339(now)}};
}

// Kubernetes' rule: the same status and reason changes nothing; the same
// status keeps the transition time.
void SetCondition(Json& status, Json condition) {
  const std::string type = StringAt(condition, "type");
  if (const Json* current = GetCondition(status, type)) {
    if (StringAt(*current, "status") == StringAt(condition, "status")) {
      if (StringAt(*current, "reason") == StringAt(condition, "reason")) return;
      condition["lastTransitionTime"] = (*current)["lastTransitionTime"];
    }
  }
  RemoveCondition(status, type);
  if (!status.contains("conditions") || !status["conditions"].is_array()) {
    status["conditions"] = Json::array();
  }
  status["conditions"].push_back(std::move(condition));
}

bool DeploymentComplete(const Json& d, const Json& status) {
  const int64_t replicas = SpecReplicas(d);
  return IntAt(status, "updatedReplicas") == replicas && IntAt(status, "replicas") == replicas &&
         IntAt(status, "availableReplicas") == replicas &&
         IntAt(status, "observedGeneration") >= GenerationOf(d);
}

// Any sign of progress between two statuses.
bool DeploymentProgressing(const Json& before, const Json& after) {
  auto old_replicas = [](const Json& s) {
    return IntAt(s, "replicas") - IntAt(s, "updatedReplicas");
  };
  return IntAt(after, "updatedReplicas") > IntAt(before, "updatedReplicas") ||
         old_replicas(after) < old_replicas(before) ||
         IntAt(after, "readyReplicas") > IntAt(before, "readyReplicas") ||
         IntAt(after, "availableReplicas") > IntAt(before, "availableReplicas");
}

// One reconcile's working state.
struct Pass {
  std::string key;
  Json d;                           // the deployment, as last read or written
  std::deque<ReplicaSetView> sets;  // every set it controls (stable addresses)
  ReplicaSetView* new_rs = nullptr;
  std::vector<ReplicaSetView*> old;
  int64_t written_revision = 0;  // the newest revision this pass wrote
};

class DeploymentReconciler : public Reconciler {
 public:
  explicit DeploymentReconciler(const WorkloadOptions& options) : options_(options) {}

  void Setup(ReconcileContext& ctx) override {
    ctx_ = &ctx;
    deployments_ = &ctx.Cache("apps", "deployments");
    replica_sets_ = &ctx.Cache("apps", "replicasets");
    pods_ = &ctx.Cache("", "pods");
    replica_sets_->AddIndex(kByControllerUid, ControllerUidValues);
    pods_->AddIndex(kByControllerUid, ControllerUidValues);
    WorkQueue& q = ctx.queue();
    deployments_->AddHandlers({[&q](const ObjectPtr& d) { q.Add(ObjectKey(*d)); },
                               [&q](const ObjectPtr&, const ObjectPtr& d) { q.Add(ObjectKey(*d)); },
                               [&q](const ObjectPtr& d) { q.Add(ObjectKey(*d)); }});
    replica_sets_->AddHandlers({[this](const ObjectPtr& rs) { OnReplicaSet(nullptr, *rs); },
                                [this](const ObjectPtr& before, const ObjectPtr& after) {
                                  OnReplicaSet(before.get(), *after);
                                },
                                [this](const ObjectPtr& rs) { OnReplicaSet(nullptr, *rs); }});
    pods_->AddHandlers({[this](const ObjectPtr& pod) { OnPod(*pod); },
                        [this](const ObjectPtr& before, const ObjectPtr& after) {
                          if ((*before).value("status", Json()) !=
                                  (*after).value("status", Json()) ||
                              IsTerminating(*before) != IsTerminating(*after) ||
                              ControllerUid(*before) != ControllerUid(*after)) {
                            OnPod(*after);
                          }
                        },
                        [this](const ObjectPtr& pod) { OnPod(*pod); }});
  }

  absl::Status Reconcile(const std::string& key) override;

 private:
  void OnReplicaSet(const Json* before, const Json& rs) {
    if (before != nullptr) {
      const std::string old_owner = DeploymentKeyOf(*before);
      if (!old_owner.empty() && old_owner != DeploymentKeyOf(rs)) ctx_->queue().Add(old_owner);
    }
    const std::string owner = DeploymentKeyOf(rs);
    if (!owner.empty()) {
      ctx_->queue().Add(owner);
      return;
    }
    // An orphan: any deployment whose selector matches may adopt it.
    for (const ObjectPtr& d : deployments_->List(NamespaceOf(rs))) {
      const Json* selector = Find(*d, {"spec", "selector"});
      if (selector == nullptr) continue;
      auto s = LabelSelector::FromJson(*selector);
      if (s.ok() && !s->empty() && s->Matches(Find(rs, {"metadata", "labels"}))) {
        ctx_->queue().Add(ObjectKey(*d));
      }
    }
  }

  // A pod's readiness moves its deployment's rollout: find it through the pod's set.
  void OnPod(const Json& pod) {
    const Json* ref = ControllerRef(pod);
    if (ref == nullptr || StringAt(*ref, "kind") != "ReplicaSet") return;
    ObjectPtr rs = replica_sets_->Get(NamespaceOf(pod), StringAt(*ref, "name"));
    if (!rs) return;
    const std::string owner = DeploymentKeyOf(*rs);
    if (!owner.empty()) ctx_->queue().Add(owner);
  }

  ReplicaSetView ViewOf(const Json& rs) const {
    ReplicaSetView v;
    v.object = rs;
    v.replicas = SpecReplicas(rs);
    v.created = CreatedAt(rs).value_or(absl::InfinitePast());
    const int64_t min_ready_seconds = IntAt(rs.value("spec", Json::object()), "minReadySeconds");
    const absl::Time now = options_.now();
    for (const ObjectPtr& pod : pods_->ByIndex(kByControllerUid, UidOf(rs))) {
      if (!IsPodActive(*pod)) continue;
      ++v.active_pods;
      if (IsPodAvailable(*pod, min_ready_seconds, now)) ++v.available_pods;
    }
    return v;
  }

  Rollout MakeRollout(Pass& p) {
    Rollout r;
    r.deployment = &p.d;
    r.new_rs = p.new_rs;
    r.old = p.old;
    r.scale = [this, &p](ReplicaSetView& rs, int64_t replicas) { return Scale(p, rs, replicas); };
    return r;
  }

  absl::Status Sync(Pass& p);
  void Classify(Pass& p);
  absl::Status SyncRevision(Pass& p, bool create);
  absl::Status CreateNewReplicaSet(Pass& p, int64_t new_revision);
  absl::Status CheckPausedCondition(Pass& p);
  absl::Status SyncScale(Pass& p);
  absl::Status RolloutRolling(Pass& p);
  absl::Status RolloutRecreate(Pass& p);
  bool OldPodsRunning(const Pass& p) const;
  absl::Status CleanUpHistory(Pass& p);
  Json CalculateStatus(const Pass& p) const;
  absl::Status SyncStatus(Pass& p);
  absl::Status SyncRolloutStatus(Pass& p);
  void RequeueForDeadline(const Pass& p, const Json& status);

  absl::Status Scale(Pass& p, ReplicaSetView& rs, int64_t replicas);
  absl::Status UpdateReplicaSet(Pass& p, ReplicaSetView& view, const Json& next);
  // Writes p.d's metadata (main resource) and/or its status.
  absl::Status SaveDeployment(Pass& p, bool metadata, bool status);
  void Noted(Pass& p, const Json& written) {
    int64_t rv = 0;
    if (absl::SimpleAtoi(ResourceVersionOf(written), &rv)) {
      p.written_revision = std::max(p.written_revision, rv);
    }
  }

  // All fixed once Setup returns; the caches and the queue are thread-safe,
  // and each Pass is one worker's own.
  const WorkloadOptions options_;
  ReconcileContext* ctx_ = nullptr;
  ObjectCache* deployments_ = nullptr;
  ObjectCache* replica_sets_ = nullptr;
  ObjectCache* pods_ = nullptr;
  const ResourceType& deployment_type_ = TypeOf("apps", "deployments");
  const ResourceType& rs_type_ = TypeOf("apps", "replicasets");
};

absl::Status DeploymentReconciler::Reconcile(const std::string& key) {
  ObjectPtr cached = deployments_->Get(key);
  if (!cached) return absl::OkStatus();
  Pass p;
  p.key = key;
  p.d = *cached;
  const Json* selector_json = Find(p.d, {"spec", "selector"});
  auto selector = LabelSelector::FromJson(selector_json ? *selector_json : Json());
  if (!selector.ok() || selector->empty()) {
    spdlog::warn("event=deployment_bad_selector key={} error=\"{}\"", key,
                 selector.ok() ? "empty selector" : selector.status().ToString());
    return absl::OkStatus();
  }
  ClaimRequest claim{&deployment_type_, &p.d, &*selector, &rs_type_, nullptr};
  auto claimed = Claim(ctx_->client(), claim, replica_sets_->List(NamespaceOf(p.d)));
  if (!claimed.ok()) return claimed.status();
  for (const ObjectPtr& rs : *claimed) p.sets.push_back(ViewOf(*rs));
  absl::Status st = Sync(p);
  if (p.written_revision > 0) {
    // The next reconcile must see this one's writes (the step it took).
    replica_sets_->WaitForRevision(p.written_revision, kOwnWritesWait);
    deployments_->WaitForRevision(p.written_revision, kOwnWritesWait);
  }
  return st;
}

absl::Status DeploymentReconciler::Sync(Pass& p) {
  Classify(p);
  if (IsTerminating(p.d)) {
    // Being deleted: its sets go with it; only report.
    return SyncStatus(p);
  }
  absl::Status st = CheckPausedCondition(p);
  if (!st.ok()) return st;
  if (IsPaused(p.d)) return SyncScale(p);
  Rollout r = MakeRollout(p);
  if (IsScalingEvent(r)) return SyncScale(p);
  if (IsRollingUpdate(p.d)) return RolloutRolling(p);
  return RolloutRecreate(p);
}

void DeploymentReconciler::Classify(Pass& p) {
  std::vector<ReplicaSetView*> all;
  for (ReplicaSetView& v : p.sets) all.push_back(&v);
  std::sort(all.begin(), all.end(), [](const ReplicaSetView* a, const ReplicaSetView* b) {
    if (a->created != b->created) return a->created < b->created;
    return NameOf(a->object) < NameOf(b->object);
  });
  const Json& tmpl = p.d["spec"]["template"];
  p.new_rs = nullptr;
  p.old.clear();
  for (ReplicaSetView* v : all) {
    const Json* t = Find(v->object, {"spec", "template"});
    if (p.new_rs == nullptr && t != nullptr && TemplatesEqualIgnoringHash(*t, tmpl)) {
      p.new_rs = v;
    } else {
      p.old.push_back(v);
    }
  }
}

absl::Status DeploymentReconciler::SyncRevision(Pass& p, bool create) {
  Classify(p);
  int64_t max_old = 0;
  for (const ReplicaSetView* v : p.old) max_old = std::max(max_old, RevisionOf(v->object));
  const int64_t new_revision = max_old + 1;
  if (p.new_rs == nullptr) {
    if (!create) return absl::OkStatus();
    return CreateNewReplicaSet(p, new_revision);
  }
  Json next = p.new_rs->object;
  bool changed = SetNewReplicaSetAnnotations(p.d, next, new_revision, false, MaxSurge(p.d));
  const int64_t min_ready = IntAt(p.d["spec"], "minReadySeconds");
  if (IntAt(next["spec"], "minReadySeconds") != min_ready) {
    next["spec"]["minReadySeconds"] = min_ready;
    changed = true;
  }
  if (changed) {
    absl::Status st = UpdateReplicaSet(p, *p.new_rs, next);
    if (!st.ok()) return st;
  }
  const std::string revision = AnnotationOf(p.new_rs->object, kRevisionAnnotation);
  bool metadata = false, status = false;
  if (AnnotationOf(p.d, kRevisionAnnotation) != revision) {
    p.d["metadata"]["annotations"][kRevisionAnnotation] = revision;
    metadata = true;
  }
  if (HasProgressDeadline(p.d) &&
      GetCondition(p.d.value("status", Json::object()), "Progressing") == nullptr) {
    SetCondition(p.d["status"], NewCondition("Progressing", "True", kFoundNewReplicaSet,
                                             absl::StrCat("Found new replica set \"",
                                                          NameOf(p.new_rs->object), "\""),
                                             options_.now()));
    status = true;
  }
  return SaveDeployment(p, metadata, status);
}

absl::Status DeploymentReconciler::CreateNewReplicaSet(Pass& p, int64_t new_revision) {
  const Json& d = p.d;
  std::optional<int64_t> collisions;
  if (const Json* c = Find(d, {"status", "collisionCount"}); c && c->is_number_integer()) {
    collisions = c->get<int64_t>();
  }
  Json tmpl = d["spec"]["template"];
  const std::string hash = PodTemplateHash(tmpl, collisions);
  tmpl["metadata"]["labels"][kPodTemplateHashLabel] = hash;
  Json selector = d["spec"]["selector"];
  selector["matchLabels"][kPodTemplateHashLabel] = hash;
  const std::string name = absl::StrCat(NameOf(d), "-", hash);
  Json rs = {{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"metadata",
              {{"name", name},
               {"namespace", NamespaceOf(d)},
               {"labels", tmpl["metadata"]["labels"]},
               {"ownerReferences", Json::array({ControllerRefTo(d)})}}},
             {"spec",
              {{"replicas", 0},
               {"minReadySeconds", IntAt(d["spec"], "minReadySeconds")},
               {"selector", selector},
               {"template", tmpl}}}};
  ReplicaSetView sizing = ViewOf(rs);
  sizing.replicas = 0;
  Rollout r = MakeRollout(p);
  const int64_t size = NewReplicaSetSize(r, sizing);
  rs["spec"]["replicas"] = size;
  SetNewReplicaSetAnnotations(d, rs, new_revision, true, MaxSurge(d));
  auto created = ctx_->client().Create(rs_type_, rs);
  bool already_existed = false;
  if (absl::IsAlreadyExists(created.status())) {
    // Ours from an earlier pass the cache has not shown yet, or a collision.
    auto existing = ctx_->client().Get(rs_type_, NamespaceOf(d), name);
    if (!existing.ok()) return existing.status();
    const Json* existing_template = Find(*existing, {"spec", "template"});
    if (ControllerUid(*existing) == UidOf(d) && existing_template != nullptr &&
        TemplatesEqualIgnoringHash(*existing_template, d["spec"]["template"])) {
      created = *existing;
      already_existed = true;
    } else {
      spdlog::warn("event=deployment_hash_collision deployment={} replicaset={} collision_count={}",
                   p.key, name, collisions.value_or(0) + 1);
      p.d["status"]["collisionCount"] = collisions.value_or(0) + 1;
      absl::Status st = SaveDeployment(p, false, true);
      if (!st.ok()) return st;
      return absl::AbortedError(absl::StrCat("replica set name ", name,
                                             " is taken by another template; hashing again with "
                                             "collisionCount ",
                                             collisions.value_or(0) + 1));
    }
  } else if (!created.ok()) {
    if (HasProgressDeadline(d) && !absl::IsFailedPrecondition(created.status()) &&
        !absl::IsAborted(created.status())) {
      SetCondition(p.d["status"],
                   NewCondition("Progressing", "False", kReplicaSetCreateError,
                                absl::StrCat("Failed to create new replica set \"", name,
                                             "\": ", created.status().message()),
                                options_.now()));
      (void)SaveDeployment(p, false, true);
    }
    return absl::Status(created.status().code(), absl::StrCat("creating replica set ", name, ": ",
                                                              created.status().message()));
  }
  Noted(p, *created);
  if (!already_existed) {
    spdlog::info(
        "event=deployment_new_replicaset deployment={} replicaset={} revision={} replicas={}",
        p.key, name, new_revision, size);
  }
  p.sets.push_back(ViewOf(*created));
  p.new_rs = &p.sets.back();
  if (!already_existed && size > 0) {
    (void)ctx_->client().RecordEvent(
        d, "Normal", "ScalingReplicaSet",
        absl::StrCat("Scaled up replica set ", name, " from 0 to ", size));
  }
  bool metadata = false, status = false;
  const std::string revision = absl::StrCat(new_revision);
  if (AnnotationOf(p.d, kRevisionAnnotation) != revision) {
    p.d["metadata"]["annotations"][kRevisionAnnotation] = revision;
    metadata = true;
  }
  if (!already_existed && HasProgressDeadline(p.d)) {
    SetCondition(p.d["status"], NewCondition("Progressing", "True", kNewReplicaSetCreated,
                                             absl::StrCat("Created new replica set \"", name, "\""),
                                             options_.now()));
    status = true;
  }
  return SaveDeployment(p, metadata, status);
}

absl::Status DeploymentReconciler::CheckPausedCondition(Pass& p) {
  if (!HasProgressDeadline(p.d)) return absl::OkStatus();
  const Json status = p.d.value("status", Json::object());
  const Json* current = GetCondition(status, "Progressing");
  // A reported lack of progress stays until progress is made.
  if (current && StringAt(*current, "reason") == kProgressDeadlineExceeded) {
    return absl::OkStatus();
  }
  const bool paused_reported = current && StringAt(*current, "reason") == kDeploymentPaused;
  if (IsPaused(p.d) && !paused_reported) {
    SetCondition(p.d["status"], NewCondition("Progressing", "Unknown", kDeploymentPaused,
                                             "Deployment is paused", options_.now()));
  } else if (!IsPaused(p.d) && paused_reported) {
    SetCondition(p.d["status"], NewCondition("Progressing", "Unknown", kDeploymentResumed,
                                             "Deployment is resumed", options_.now()));
  } else {
    return absl::OkStatus();
  }
  return SaveDeployment(p, false, true);
}

absl::Status DeploymentReconciler::SyncScale(Pass& p) {
  absl::Status st = SyncRevision(p, /*create=*/false);
  if (!st.ok()) return st;
  Rollout r = MakeRollout(p);
  st = ScaleProportionally(r);
  if (!st.ok()) return st;
  if (IsPaused(p.d)) {
    st = CleanUpHistory(p);
    if (!st.ok()) return st;
  }
  return SyncStatus(p);
}

absl::Status DeploymentReconciler::RolloutRolling(Pass& p) {
  absl::Status st = SyncRevision(p, /*create=*/true);
  if (!st.ok()) return st;
  Rollout r = MakeRollout(p);
  auto up = ScaleNewForRollingUpdate(r);
  if (!up.ok()) return up.status();
  if (*up) return SyncRolloutStatus(p);
  auto down = ScaleOldForRollingUpdate(r);
  if (!down.ok()) return down.status();
  if (*down) return SyncRolloutStatus(p);
  if (DeploymentComplete(p.d, p.d.value("status", Json::object()))) {
    st = CleanUpHistory(p);
    if (!st.ok()) return st;
  }
  return SyncRolloutStatus(p);
}

absl::Status DeploymentReconciler::RolloutRecreate(Pass& p) {
  absl::Status st = SyncRevision(p, /*create=*/false);
  if (!st.ok()) return st;
  Rollout r = MakeRollout(p);
  auto down = ScaleDownOldForRecreate(r);
  if (!down.ok()) return down.status();
  if (*down || OldPodsRunning(p)) return SyncRolloutStatus(p);
  if (p.new_rs == nullptr) {
    st = SyncRevision(p, /*create=*/true);
    if (!st.ok()) return st;
  }
  Rollout up = MakeRollout(p);
  st = ScaleUpNewForRecreate(up);
  if (!st.ok()) return st;
  if (DeploymentComplete(p.d, p.d.value("status", Json::object()))) {
    st = CleanUpHistory(p);
    if (!st.ok()) return st;
  }
  return SyncRolloutStatus(p);
}

bool DeploymentReconciler::OldPodsRunning(const Pass& p) const {
  for (const ReplicaSetView* v : p.old) {
    if (StatusInt(v->object, "replicas") > 0) return true;
    for (const ObjectPtr& pod : pods_->ByIndex(kByControllerUid, UidOf(v->object))) {
      const Json* phase = Find(*pod, {"status", "phase"});
      // Terminating pods still run until they are gone.
      if (phase == nullptr || (*phase != "Failed" && *phase != "Succeeded")) return true;
    }
  }
  return false;
}

absl::Status DeploymentReconciler::CleanUpHistory(Pass& p) {
  const Json& spec = p.d["spec"];
  if (!spec.contains("revisionHistoryLimit")) return absl::OkStatus();
  const int64_t limit = IntAt(spec, "revisionHistoryLimit", 0);
  std::vector<ReplicaSetView*> alive;
  for (ReplicaSetView* v : p.old) {
    if (!IsTerminating(v->object)) alive.push_back(v);
  }
  const int64_t surplus = static_cast<int64_t>(alive.size()) - limit;
  if (surplus <= 0) return absl::OkStatus();
  std::sort(alive.begin(), alive.end(), [](const ReplicaSetView* a, const ReplicaSetView* b) {
    if (RevisionOf(a->object) != RevisionOf(b->object)) {
      return RevisionOf(a->object) < RevisionOf(b->object);
    }
    return a->created < b->created;
  });
  for (int64_t i = 0; i < surplus; ++i) {
    const Json& rs = alive[i]->object;
    // Only a set that is empty and whose status says so.
    if (StatusInt(rs, "replicas") != 0 || alive[i]->replicas != 0 ||
        GenerationOf(rs) > StatusInt(rs, "observedGeneration") || alive[i]->active_pods != 0) {
      continue;
    }
    DeleteOptions options;
    options.uid = UidOf(rs);
    options.resource_version = ResourceVersionOf(rs);
    absl::Status st = ctx_->client().Delete(rs_type_, NamespaceOf(rs), NameOf(rs), options);
    if (!st.ok() && !absl::IsNotFound(st)) {
      return absl::Status(
          st.code(), absl::StrCat("deleting old replica set ", NameOf(rs), ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

Json DeploymentReconciler::CalculateStatus(const Pass& p) const {
  const Json& d = p.d;
  Json status = d.value("status", Json::object());
  if (!status.is_object()) status = Json::object();
  int64_t replicas = 0, ready = 0, available = 0, wanted = 0;
  for (const ReplicaSetView& v : p.sets) {
    replicas += StatusInt(v.object, "replicas");
    ready += StatusInt(v.object, "readyReplicas");
    available += StatusInt(v.object, "availableReplicas");
    wanted += v.replicas;
  }
  status["observedGeneration"] = GenerationOf(d);
  status["replicas"] = replicas;
  status["updatedReplicas"] = p.new_rs ? StatusInt(p.new_rs->object, "replicas") : 0;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["unavailableReplicas"] = std::max<int64_t>(wanted - available, 0);
  const absl::Time now = options_.now();
  if (available >= SpecReplicas(d) - MaxUnavailable(d)) {
    SetCondition(status, NewCondition("Available", "True", kMinimumReplicasAvailable,
                                      "Deployment has minimum availability.", now));
  } else {
    SetCondition(status, NewCondition("Available", "False", kMinimumReplicasUnavailable,
                                      "Deployment does not have minimum availability.", now));
  }
  return status;
}

absl::Status DeploymentReconciler::SyncStatus(Pass& p) {
  Json status = CalculateStatus(p);
  if (p.d.value("status", Json::object()) == status) return absl::OkStatus();
  p.d["status"] = status;
  return SaveDeployment(p, false, true);
}

absl::Status DeploymentReconciler::SyncRolloutStatus(Pass& p) {
  Json status = CalculateStatus(p);
  const Json before = p.d.value("status", Json::object());
  if (!HasProgressDeadline(p.d)) RemoveCondition(status, "Progressing");
  const Json* current = GetCondition(before, "Progressing");
  const bool complete = IntAt(status, "replicas") == IntAt(status, "updatedReplicas") &&
                        current != nullptr &&
                        StringAt(*current, "reason") == kNewReplicaSetAvailable;
  const absl::Time now = options_.now();
  const std::string subject = p.new_rs
                                  ? absl::StrCat("ReplicaSet \"", NameOf(p.new_rs->object), "\"")
                                  : absl::StrCat("Deployment \"", NameOf(p.d), "\"");
  if (HasProgressDeadline(p.d) && !complete) {
    if (DeploymentComplete(p.d, status)) {
      SetCondition(status, NewCondition("Progressing", "True", kNewReplicaSetAvailable,
                                        subject + " has successfully progressed.", now));
    } else if (DeploymentProgressing(before, status)) {
      Json condition = NewCondition("Progressing", "True", kReplicaSetUpdated,
                                    subject + " is progressing.", now);
      if (current != nullptr) {
        if (StringAt(*current, "status") == "True") {
          condition["lastTransitionTime"] = (*current)["lastTransitionTime"];
        }
        RemoveCondition(status, "Progressing");
      }
      SetCondition(status, condition);
    } else {
      // Timed out: no progress for progressDeadlineSeconds since the last update.
      const Json* progressing = GetCondition(status, "Progressing");
      bool timed_out = false;
      if (progressing != nullptr) {
        const std::string reason = StringAt(*progressing, "reason");
        if (reason == kProgressDeadlineExceeded) {
          timed_out = true;
        } else if (reason != kNewReplicaSetAvailable) {
          auto from = ParseRfc3339(Find(*progressing, {"lastUpdateTime"}));
          const int64_t deadline = IntAt(p.d["spec"], "progressDeadlineSeconds");
          timed_out = from && *from + absl::Seconds(deadline) < now;
        }
      }
      if (timed_out) {
        SetCondition(status, NewCondition("Progressing", "False", kProgressDeadlineExceeded,
                                          subject + " has timed out progressing.", now));
      }
    }
  }
  RequeueForDeadline(p, status);
  if (before == status) return absl::OkStatus();
  p.d["status"] = status;
  return SaveDeployment(p, false, true);
}

void DeploymentReconciler::RequeueForDeadline(const Pass& p, const Json& status) {
  if (!HasProgressDeadline(p.d) || DeploymentComplete(p.d, status)) return;
  const Json* progressing = GetCondition(status, "Progressing");
  if (progressing == nullptr) return;
  const std::string reason = StringAt(*progressing, "reason");
  if (reason == kNewReplicaSetAvailable || reason == kProgressDeadlineExceeded) return;
  auto from = ParseRfc3339(Find(*progressing, {"lastUpdateTime"}));
  if (!from) return;
  const absl::Duration after =
      *from + absl::Seconds(IntAt(p.d["spec"], "progressDeadlineSeconds")) - options_.now();
  ctx_->queue().AddAfter(p.key, std::max(after, absl::ZeroDuration()) + kDeadlineSlack);
}

absl::Status DeploymentReconciler::Scale(Pass& p, ReplicaSetView& rs, int64_t replicas) {
  Json next = rs.object;
  const bool resize = rs.replicas != replicas;
  next["spec"]["replicas"] = replicas;
  const int64_t desired = SpecReplicas(p.d);
  const bool annotate = SetReplicasAnnotations(next, desired, desired + MaxSurge(p.d));
  if (!resize && !annotate) return absl::OkStatus();
  const int64_t from = rs.replicas;
  absl::Status st = UpdateReplicaSet(p, rs, next);
  if (!st.ok()) return st;
  if (resize) {
    (void)ctx_->client().RecordEvent(
        p.d, "Normal", "ScalingReplicaSet",
        absl::StrCat("Scaled ", replicas > from ? "up" : "down", " replica set ", NameOf(rs.object),
                     " from ", from, " to ", replicas));
  }
  return absl::OkStatus();
}

absl::Status DeploymentReconciler::UpdateReplicaSet(Pass& p, ReplicaSetView& view,
                                                    const Json& next) {
  auto written = ctx_->client().Update(rs_type_, next);
  if (!written.ok()) {
    return absl::Status(written.status().code(), absl::StrCat("updating replica set ", NameOf(next),
                                                              ": ", written.status().message()));
  }
  Noted(p, *written);
  const int64_t active = view.active_pods, available = view.available_pods;
  view.object = *written;
  view.replicas = SpecReplicas(*written);
  view.active_pods = active;
  view.available_pods = available;
  return absl::OkStatus();
}

absl::Status DeploymentReconciler::SaveDeployment(Pass& p, bool metadata, bool status) {
  if (metadata) {
    const Json wanted_status = p.d.value("status", Json::object());
    auto written = ctx_->client().Update(deployment_type_, p.d);
    if (!written.ok()) {
      return absl::Status(written.status().code(), absl::StrCat("updating deployment ", p.key, ": ",
                                                                written.status().message()));
    }
    Noted(p, *written);
    p.d = *written;
    if (p.d.value("status", Json::object()) != wanted_status) {
      p.d["status"] = wanted_status;
      status = true;
    }
  }
  if (status) {
    auto written = ctx_->client().Update(deployment_type_, p.d, "status");
    if (!written.ok()) {
      return absl::Status(written.status().code(),
                          absl::StrCat("updating the status of deployment ", p.key, ": ",
                                       written.status().message()));
    }
    Noted(p, *written);
    p.d = *written;
  }
  return absl::OkStatus();
}

}  // namespace

ReconcilerSpec DeploymentReconcilerSpec(WorkloadOptions options) {
  ReconcilerSpec spec;
  spec.name = "deployment";
  spec.workers = options.workers;
  spec.make = [options](ReconcileContext&) {
    return std::make_unique<DeploymentReconciler>(options);
  };
  return spec;
}

}  // namespace ganglion::orchestrator::workloads
