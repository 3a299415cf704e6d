#include "orchestrator/workloads/rollout.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/types/validation.h"
#include "orchestrator/workloads/objects.h"
#include "orchestrator/workloads/revision.h"

namespace ganglion::orchestrator::workloads {

namespace {

bool OlderFirst(const ReplicaSetView* a, const ReplicaSetView* b) {
  if (a->created != b->created) return a->created < b->created;
  return NameOf(a->object) < NameOf(b->object);
}

int64_t SumReplicas(const std::vector<ReplicaSetView*>& sets) {
  int64_t n = 0;
  for (const ReplicaSetView* rs : sets) n += rs->replicas;
  return n;
}

std::vector<ReplicaSetView*> Active(const std::vector<ReplicaSetView*>& sets) {
  std::vector<ReplicaSetView*> out;
  for (ReplicaSetView* rs : sets) {
    if (rs->replicas > 0) out.push_back(rs);
  }
  return out;
}

std::pair<int64_t, int64_t> Fenceposts(const Json& d) {
  const int64_t replicas = SpecReplicas(d);
  const Json* ru = Find(d, {"spec", "strategy", "rollingUpdate"});
  const Json surge_value = ru && ru->contains("maxSurge") ? (*ru)["maxSurge"] : Json(0);
  const Json unavailable_value =
      ru && ru->contains("maxUnavailable") ? (*ru)["maxUnavailable"] : Json(0);
  // Validation refuses malformed values; should one slip through, surge
  // nothing and allow one unavailable, the most careful reading.
  const int64_t surge = ScaledValue(surge_value, replicas, true).value_or(0);
  int64_t unavailable = ScaledValue(unavailable_value, replicas, false).value_or(0);
  if (surge == 0 && unavailable == 0) unavailable = 1;
  return {surge, unavailable};
}

}  // namespace

std::vector<ReplicaSetView*> Rollout::All() const {
  std::vector<ReplicaSetView*> all = old;
  if (new_rs != nullptr) all.push_back(new_rs);
  return all;
}

absl::StatusOr<int64_t> ScaledValue(const Json& v, int64_t total, bool round_up) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) return absl::InvalidArgumentError(absl::StrCat("invalid value ", v.dump()));
  std::string s = v.get<std::string>();
  int64_t percent = 0;
  if (s.size() < 2 || s.back() != '%' || !absl::SimpleAtoi(s.substr(0, s.size() - 1), &percent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value \"", s, "\": must be an integer or a percentage"));
  }
  const double scaled = static_cast<double>(percent) * static_cast<double>(total) / 100.0;
  return static_cast<int64_t>(round_up ? std::ceil(scaled) : std::floor(scaled));
}

bool IsRollingUpdate(const Json& d) {
  const Json* type = Find(d, {"spec", "strategy", "type"});
  return type == nullptr || *type == "RollingUpdate";
}

int64_t MaxSurge(const Json& d) {
  if (!IsRollingUpdate(d)) return 0;
  return Fenceposts(d).first;
}

int64_t MaxUnavailable(const Json& d) {
  const int64_t replicas = SpecReplicas(d);
  if (!IsRollingUpdate(d) || replicas == 0) return 0;
  return std::min(Fenceposts(d).second, replicas);
}

int64_t NewReplicaSetSize(const Rollout& r, const ReplicaSetView& new_rs) {
  const int64_t replicas = SpecReplicas(*r.deployment);
  if (!IsRollingUpdate(*r.deployment)) return replicas;
  int64_t may_have = new_rs.MayHave();
  for (const ReplicaSetView* rs : r.old) may_have += rs->MayHave();
  const int64_t most = replicas + MaxSurge(*r.deployment);
  if (may_have >= most) return new_rs.replicas;  // no room to surge
  const int64_t up = std::min(most - may_have, replicas - new_rs.replicas);
  return new_rs.replicas + std::max<int64_t>(up, 0);
}

absl::StatusOr<bool> ScaleNewForRollingUpdate(Rollout& r) {
  ReplicaSetView* n = r.new_rs;
  const int64_t replicas = SpecReplicas(*r.deployment);
  if (n == nullptr || n->replicas == replicas) return false;
  if (n->replicas > replicas) {
    absl::Status st = r.scale(*n, replicas);
    if (!st.ok()) return st;
    return true;
  }
  const int64_t size = NewReplicaSetSize(r, *n);
  if (size == n->replicas) return false;
  absl::Status st = r.scale(*n, size);
  if (!st.ok()) return st;
  return true;
}

absl::StatusOr<bool> ScaleOldForRollingUpdate(Rollout& r) {
  const Json& d = *r.deployment;
  if (SumReplicas(r.old) == 0) return false;
  const int64_t min_available = SpecReplicas(d) - MaxUnavailable(d);
  const int64_t all_replicas = SumReplicas(r.All());
  const int64_t new_unavailable = r.new_rs ? r.new_rs->replicas - r.new_rs->KeptAvailable() : 0;
  const int64_t most_down = all_replicas - min_available - new_unavailable;
  if (most_down <= 0) return false;

  std::vector<ReplicaSetView*> old = r.old;
  std::sort(old.begin(), old.end(), OlderFirst);
  // First the old pods that are not available anyway: removing them costs
  // no availability.
  int64_t cleaned = 0;
  for (ReplicaSetView* rs : old) {
    if (cleaned >= most_down) break;
    if (rs->replicas == 0) continue;
    const int64_t unhealthy = rs->replicas - rs->KeptAvailable();
    if (unhealthy <= 0) continue;
    const int64_t down = std::min(most_down - cleaned, unhealthy);
    absl::Status st = r.scale(*rs, rs->replicas - down);
    if (!st.ok()) return st;
    cleaned += down;
  }
  // Then available ones, as far as the budget allows.
  int64_t available = 0;
  for (const ReplicaSetView* rs : r.All()) available += rs->KeptAvailable();
  int64_t scaled = 0;
  if (available > min_available) {
    const int64_t total = available - min_available;
    for (ReplicaSetView* rs : old) {
      if (scaled >= total) break;
      if (rs->replicas == 0) continue;
      const int64_t down = std::min(rs->replicas, total - scaled);
      absl::Status st = r.scale(*rs, rs->replicas - down);
      if (!st.ok()) return st;
      scaled += down;
    }
  }
  return cleaned + scaled > 0;
}

absl::StatusOr<bool> ScaleDownOldForRecreate(Rollout& r) {
  bool scaled = false;
  for (ReplicaSetView* rs : r.old) {
    if (rs->replicas == 0) continue;
    absl::Status st = r.scale(*rs, 0);
    if (!st.ok()) return st;
    scaled = true;
  }
  return scaled;
}

absl::Status ScaleUpNewForRecreate(Rollout& r) {
  if (r.new_rs == nullptr) return absl::OkStatus();
  const int64_t replicas = SpecReplicas(*r.deployment);
  if (r.new_rs->replicas == replicas) return absl::OkStatus();
  return r.scale(*r.new_rs, replicas);
}

bool IsScalingEvent(const Rollout& r) {
  const std::string want = absl::StrCat(SpecReplicas(*r.deployment));
  for (const ReplicaSetView* rs : Active(r.All())) {
    const std::string desired = AnnotationOf(rs->object, kDesiredReplicasAnnotation);
    if (!desired.empty() && desired != want) return true;
  }
  return false;
}

bool IsNewSaturated(const Rollout& r) {
  if (r.new_rs == nullptr) return false;
  const int64_t replicas = SpecReplicas(*r.deployment);
  return r.new_rs->replicas == replicas &&
         AnnotationOf(r.new_rs->object, kDesiredReplicasAnnotation) == absl::StrCat(replicas) &&
         StatusInt(r.new_rs->object, "availableReplicas") == replicas;
}

absl::Status ScaleProportionally(Rollout& r) {
  const Json& d = *r.deployment;
  const int64_t replicas = SpecReplicas(d);
  // One active set (or none: then the newest) takes everything.
  std::vector<ReplicaSetView*> active = Active(r.All());
  if (active.size() <= 1) {
    ReplicaSetView* only = nullptr;
    if (active.size() == 1) {
      only = active[0];
    } else if (r.new_rs != nullptr) {
      only = r.new_rs;
    } else if (!r.old.empty()) {
      only = *std::max_element(r.old.begin(), r.old.end(), OlderFirst);
    }
    if (only == nullptr) return absl::OkStatus();
    // Also when the size is right: the scale brings its annotations up to date.
    return r.scale(*only, replicas);
  }
  if (IsNewSaturated(r)) {
    for (ReplicaSetView* rs : Active(r.old)) {
      absl::Status st = r.scale(*rs, 0);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  if (!IsRollingUpdate(d)) return absl::OkStatus();
  const int64_t allowed = replicas > 0 ? replicas + MaxSurge(d) : 0;
  const int64_t to_add = allowed - SumReplicas(active);
  // Larger sets first; among equals the newer gains first and loses last.
  std::sort(active.begin(), active.end(),
            [to_add](const ReplicaSetView* a, const ReplicaSetView* b) {
              if (a->replicas != b->replicas) return a->replicas > b->replicas;
              return to_add > 0 ? OlderFirst(b, a) : OlderFirst(a, b);
            });
  std::vector<int64_t> sizes;
  int64_t added = 0;
  for (ReplicaSetView* rs : active) {
    int64_t share = 0;
    if (to_add != 0 && rs->replicas != 0 && added != to_add) {
      int64_t fraction;
      if (replicas == 0) {
        fraction = -rs->replicas;
      } else {
        const int64_t target = replicas + MaxSurge(d);
        int64_t annotated = 0;
        if (!absl::SimpleAtoi(AnnotationOf(rs->object, kMaxReplicasAnnotation), &annotated) ||
            annotated <= 0) {
          annotated = StatusInt(d, "replicas");
        }
        fraction = annotated > 0
                       ? static_cast<int64_t>(std::llround(static_cast<double>(rs->replicas) *
                                                           static_cast<double>(target) /
                                                           static_cast<double>(annotated))) -
                             rs->replicas
                       : 0;
      }
      const int64_t left = to_add - added;
      share = to_add > 0 ? std::min(fraction, left) : std::max(fraction, left);
    }
    sizes.push_back(rs->replicas + share);
    added += share;
  }
  if (to_add != 0 && !active.empty()) {
    // What rounding left over goes to (or comes from) the largest set.
    sizes[0] = std::max<int64_t>(sizes[0] + (to_add - added), 0);
  }
  for (size_t i = 0; i < active.size(); ++i) {
    absl::Status st = r.scale(*active[i], sizes[i]);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace ganglion::orchestrator::workloads
