// Which objects a controller owns: those whose controller reference names it
// and that its selector still matches. An orphan the selector matches is
// adopted (its controller reference added), an owned object the selector no
// longer matches is released (the reference removed); both are patches with
// a compare-and-swap on the object's resourceVersion, so an object that
// changed since the cache showed it is not touched. It must never take an
// object controlled by someone else, nor adopt for an owner being deleted.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/api/selectors.h"
#include "orchestrator/reconcile/object_cache.h"
#include "orchestrator/reconcile/object_client.h"

namespace ganglion::orchestrator::workloads {

struct ClaimRequest {
  const ResourceType* owner_type = nullptr;  // to re-read the owner before adopting
  const Json* owner = nullptr;
  const LabelSelector* selector = nullptr;
  const ResourceType* type = nullptr;  // of the candidates
  // Only those for which `eligible` holds may be adopted (e.g. active pods).
  bool (*eligible)(const Json& candidate) = nullptr;
};

// The candidates the owner controls once adoptions and releases are done
// (adopted ones as written). An error (a conflict, the owner gone) means the
// caller should act on nothing and retry.
absl::StatusOr<std::vector<ObjectPtr>> Claim(ObjectClient& client, const ClaimRequest& request,
                                             const std::vector<ObjectPtr>& candidates);

}  // namespace ganglion::orchestrator::workloads
