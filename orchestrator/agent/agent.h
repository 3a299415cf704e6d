// ganglion-agent: the node agent. It registers its Node, renews its node
// Lease, follows the pods bound to it and runs each as supervised processes
// (pod_worker.h), reports their status, confirms their deletion once their
// processes are gone, and serves their logs (log_server.h).
//
// Talks to the store over the etcd API (EtcdObjectStore: the client library
// fails over between the given members) and writes only through an
// ObjectClient over an in-process ApiHandler, so its writes get the API's
// defaulting, validation and metadata. It must never run a container twice,
// nor leave a process whose pod is gone, across its own restarts too: per-pod
// state lives under --root-dir and is adopted at start.
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
#include "orchestrator/agent/log_server.h"
#include "orchestrator/agent/node.h"
#include "orchestrator/agent/pod_ip.h"
#include "orchestrator/agent/pod_worker.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/object_cache.h"
#include "orchestrator/reconcile/object_client.h"
#include "orchestrator/storage/etcd_object_store.h"

namespace ganglion::orchestrator::agent {

struct AgentOptions {
  NodeConfig node;
  std::vector<std::string> endpoints;
  std::string root_dir;
  std::string listen = "127.0.0.1:10250";
  std::string pod_cidr;  // "" derives one from the node name
  BackoffPolicy backoff;
  int64_t log_rotate_bytes = 10 * 1024 * 1024;
  absl::Duration node_status_interval = absl::Seconds(60);
  int prober_threads = 2;
};

class Agent {
 public:
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options);
  ~Agent();  // Stop()s; the containers keep running (a restart adopts them)
  // Registers the node and starts every thread; returns once running or failed.
  absl::Status Start();
  void Stop();

 private:
  explicit Agent(AgentOptions options);
  void SyncLoop();
  void HeartbeatLoop();
  void ProberLoop();
  void SyncOnce(absl::Time now);
  void WriteStatus(PodWorker& worker, const Json& pod, const Json& status);
  void ConfirmDelete(PodWorker& worker, const Json& pod);
  void AdoptFromDisk();
  LogSource LookupLogs(const std::string& ns, const std::string& pod, const std::string& container,
                       bool previous);
  void Enqueue();
  void EventLoop();

  AgentOptions options_;
  WorkerConfig worker_config_;
  std::unique_ptr<EtcdObjectStore> store_;
  std::unique_ptr<ApiHandler> api_;
  std::unique_ptr<ObjectClient> client_;
  // The pods of every node come through the cache's one watch (the API's
  // shared etcd watch, as every other reader in this process); the index on
  // spec.nodeName picks ours. ObjectCache rather than client::Informer: the
  // agent already needs the EtcdObjectStore for its writes, the cache keeps
  // parsed objects with an index by node, and hollow mode serves a thousand
  // nodes from the same single cache.
  std::unique_ptr<ObjectCache> pods_;
  std::unique_ptr<LogServer> log_server_;
  PodIpAllocator ips_;
  std::string node_uid_;
  absl::Time ready_since_;

  std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool stop_ = false;
  bool dirty_ = true;
  std::map<std::string, std::unique_ptr<PodWorker>> workers_;  // by pod uid; sync thread only
  std::map<std::string, PodRecord> adopted_;                   // from disk, not yet matched
  std::deque<ProbeJob> probe_queue_;  // bounded: one entry per probe of a running container
  struct ProbeDone {
    std::string pod_uid, container;
    ProbeKind kind;
    ProbeResult result;
  };
  std::vector<ProbeDone> probe_results_;
  // Events to record, written by their own thread so that a slow write never
  // delays a pod's start; best effort: beyond kEventsQueuedMax they are dropped.
  static constexpr size_t kEventsQueuedMax = 1000;
  std::deque<std::pair<Json, PodEvent>> events_;
  // ns/pod -> uid, container -> location: what the log server may read.
  std::map<std::string, std::pair<std::string, std::map<std::string, LogLocation>>> log_index_;

  std::vector<std::thread> threads_;
};

}  // namespace ganglion::orchestrator::agent
