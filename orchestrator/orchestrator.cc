#include "orchestrator/orchestrator.h"

#include <grpcpp/grpcpp.h>

#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/storage/etcd_object_store.h"

namespace ganglion::orchestrator {

absl::StatusOr<std::unique_ptr<Orchestrator>> Orchestrator::Start(OrchestratorOptions options) {
  std::vector<ReconcilerSpec> chosen;
  const std::vector<ReconcilerSpec> builtin = BuiltinReconcilers();
  if (options.reconcilers == "all") {
    chosen = builtin;
  } else if (options.reconcilers != "none" && !options.reconcilers.empty()) {
    std::set<std::string> wanted;
    for (absl::string_view n : absl::StrSplit(options.reconcilers, ',', absl::SkipEmpty())) {
      wanted.insert(std::string(n));
    }
    for (const ReconcilerSpec& s : builtin) {
      if (wanted.erase(s.name) != 0) chosen.push_back(s);
    }
    if (!wanted.empty()) {
      std::vector<std::string> known;
      for (const ReconcilerSpec& s : builtin) known.push_back(s.name);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown reconciler \"", *wanted.begin(), "\" (known: ",
                       absl::StrJoin(known, ", "), ")"));
    }
  }
  std::unique_ptr<Orchestrator> o(new Orchestrator());
  // No reconciler (an etcd-only member): no store, no watch of /registry/.
  if (chosen.empty()) return o;
  EtcdObjectStoreOptions so;
  so.endpoints = {"in-process"};
  so.channel = std::move(options.channel);
  auto store = EtcdObjectStore::Create(std::move(so));
  if (!store.ok()) return store.status();
  o->store_ = std::move(*store);
  o->api_ = std::make_unique<ApiHandler>(*o->store_, "in-process");
  o->host_ = std::make_unique<ReconcilerHost>(*o->store_, *o->api_);
  for (ReconcilerSpec& s : chosen) {
    o->names_.push_back(s.name);
    o->host_->Register(std::move(s));
  }
  return o;
}

Orchestrator::~Orchestrator() { Stop(); }

void Orchestrator::Stop() {
  if (!host_) return;
  host_->Stop();
  // The member shuts its gRPC server down next, and nothing may use the
  // in-process channel then: gRPC 1.51 crashes creating a call on it while
  // its server shuts down (a broken watch stream would reconnect). The
  // store's client holds the only stream, its shared watch, and ends it when
  // destroyed. The stopped host stays for stats().
  api_.reset();
  store_.reset();
}

}  // namespace ganglion::orchestrator
