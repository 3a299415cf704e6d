#include "orchestrator/workloads/claim.h"

#include "absl/strings/str_cat.h"
#include "orchestrator/types/validation.h"
#include "orchestrator/workloads/objects.h"

namespace ganglion::orchestrator::workloads {

namespace {

const Json* LabelsOf(const Json& o) {
  return Find(o, {"metadata", "labels"});
}

// The owner as the store has it now: adopting for an owner that was deleted
// (and perhaps re-created under the same name) would hand it foreign objects.
absl::Status CheckOwnerCurrent(ObjectClient& client, const ClaimRequest& r) {
  auto fresh = client.Get(*r.owner_type, NamespaceOf(*r.owner), NameOf(*r.owner));
  if (!fresh.ok()) {
    return absl::AbortedError(absl::StrCat("cannot adopt for ", r.owner_type->kind, " ",
                                           NameOf(*r.owner), ": ", fresh.status().message()));
  }
  if (UidOf(*fresh) != UidOf(*r.owner)) {
    return absl::AbortedError(absl::StrCat(r.owner_type->kind, " ", NameOf(*r.owner),
                                           " was replaced (uid ", UidOf(*fresh), ", cached ",
                                           UidOf(*r.owner), ")"));
  }
  if (IsTerminating(*fresh)) {
    return absl::AbortedError(
        absl::StrCat(r.owner_type->kind, " ", NameOf(*r.owner), " is being deleted"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ObjectPtr>> Claim(ObjectClient& client, const ClaimRequest& r,
                                             const std::vector<ObjectPtr>& candidates) {
  const std::string owner_uid = UidOf(*r.owner);
  const bool owner_terminating = IsTerminating(*r.owner);
  std::vector<ObjectPtr> claimed;
  absl::Status first_error;
  bool owner_checked = false;
  for (const ObjectPtr& c : candidates) {
    const Json* ref = ControllerRef(*c);
    const bool matches = r.selector->Matches(LabelsOf(*c));
    if (ref != nullptr) {
      if (StringAt(*ref, "uid") != owner_uid) continue;  // someone else's
      if (matches) {
        claimed.push_back(c);
        continue;
      }
      if (owner_terminating) continue;
      // Release: keep every reference but ours.
      Json refs = Json::array();
      for (const Json& other : (*c)["metadata"]["ownerReferences"]) {
        if (StringAt(other, "uid") != owner_uid) refs.push_back(other);
      }
      Json patch = {{"metadata",
                     {{"resourceVersion", ResourceVersionOf(*c)},
                      {"ownerReferences", refs.empty() ? Json(nullptr) : refs}}}};
      auto released = client.Patch(*r.type, NamespaceOf(*c), NameOf(*c), PatchType::kMerge, patch);
      if (!released.ok() && !absl::IsNotFound(released.status()) && first_error.ok()) {
        first_error = released.status();
      }
      continue;
    }
    if (!matches || owner_terminating || IsTerminating(*c)) continue;
    if (r.eligible != nullptr && !r.eligible(*c)) continue;
    if (!owner_checked) {
      absl::Status current = CheckOwnerCurrent(client, r);
      if (!current.ok()) return current;
      owner_checked = true;
    }
    Json refs =
        Find(*c, {"metadata", "ownerReferences"}) && (*c)["metadata"]["ownerReferences"].is_array()
            ? (*c)["metadata"]["ownerReferences"]
            : Json::array();
    refs.push_back(ControllerRefTo(*r.owner));
    Json patch = {
        {"metadata", {{"resourceVersion", ResourceVersionOf(*c)}, {"ownerReferences", refs}}}};
    auto adopted = client.Patch(*r.type, NamespaceOf(*c), NameOf(*c), PatchType::kMerge, patch);
    if (adopted.ok()) {
      claimed.push_back(std::make_shared<const Json>(*std::move(adopted)));
    } else if (!absl::IsNotFound(adopted.status()) && first_error.ok()) {
      first_error = adopted.status();
    }
  }
  if (!first_error.ok()) return first_error;
  return claimed;
}

}  // namespace ganglion::orchestrator::workloads
