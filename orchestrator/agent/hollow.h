// Hollow nodes: many simulated nodes in one process, for load tests of the
// control plane. Each registers its Node, renews its Lease every 10 s and
// refreshes its status, marks the pods bound to it Running and Ready with a
// pod address from its own block, and confirms their deletion at once; no
// process is started. One store, one API handler and one pod cache serve
// every node; a fixed pool of `threads` does all the writes (never a thread
// per node).
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/agent/node.h"
#include "orchestrator/agent/pod_ip.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/object_cache.h"
#include "orchestrator/reconcile/object_client.h"
#include "orchestrator/storage/etcd_object_store.h"

namespace ganglion::orchestrator::agent {

struct HollowOptions {
  std::vector<std::string> endpoints;
  NodeConfig node_template;  // capacity, labels, taints, IP
  std::string name_prefix = "hollow-";
  int count = 1;
  int threads = 4;
  absl::Duration node_status_interval = absl::Seconds(60);
};

class HollowFleet {
 public:
  static absl::StatusOr<std::unique_ptr<HollowFleet>> Start(HollowOptions options);
  ~HollowFleet();
  void Stop();

 private:
  explicit HollowFleet(HollowOptions options);
  absl::Status Init();
  void Worker(int index);
  void SyncPod(const std::string& key);
  void RenewNode(int index);

  HollowOptions options_;
  std::unique_ptr<EtcdObjectStore> store_;
  std::unique_ptr<ApiHandler> api_;
  std::unique_ptr<ObjectClient> client_;
  std::unique_ptr<ObjectCache> pods_;
  std::set<std::string> names_;  // fixed after Init

  std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<std::string> queue_;  // pod keys; at most one entry per key (queued_)
  std::set<std::string> queued_;
  std::map<std::string, PodIpAllocator> ips_;   // by node
  std::map<std::string, std::string> pod_ips_;  // pod uid -> address
  std::vector<absl::Time> next_lease_;          // by node index
  std::vector<absl::Time> next_status_;         // by node index
  std::vector<std::string> node_uids_;          // by node index
  int next_node_ = 0;                           // round robin of renewals

  std::vector<std::thread> threads_;
};

}  // namespace ganglion::orchestrator::agent
