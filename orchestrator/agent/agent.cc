#include "orchestrator/agent/agent.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "orchestrator/agent/logs.h"
#include "orchestrator/agent/process.h"

namespace ganglion::orchestrator::agent {

namespace fs = std::filesystem;

namespace {

// The sync loop runs at least this often even when nothing is announced
// (process exits are found by looking).
constexpr absl::Duration kSyncIntervalMax = absl::Milliseconds(500);
constexpr int kStatusWriteAttemptsMax = 3;

std::string NodeNameOf(const Json& pod) {
  const Json* spec = pod.contains("spec") ? &pod["spec"] : nullptr;
  return spec && spec->contains("nodeName") && (*spec)["nodeName"].is_string()
             ? (*spec)["nodeName"].get<std::string>()
             : "";
}

std::string SelfBinary() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : p.string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions options) {
  if (options.node.name.empty()) return absl::InvalidArgumentError("--name is required");
  if (options.endpoints.empty()) return absl::InvalidArgumentError("--endpoints is required");
  if (options.root_dir.empty()) return absl::InvalidArgumentError("--root-dir is required");
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  return agent;
}

Agent::Agent(AgentOptions options)
    : options_(std::move(options)), ips_(DefaultBlockFor(options_.node.name)) {}

Agent::~Agent() {
  Stop();
}

absl::Status Agent::Start() {
  if (!options_.pod_cidr.empty()) {
    auto block = ParseLoopbackBlock(options_.pod_cidr);
    if (!block.ok()) return block.status();
    ips_ = PodIpAllocator(*block);
  }
  options_.node.pod_cidr = ips_.block().ToString();
  std::error_code ec;
  fs::create_directories(options_.root_dir + "/pods", ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("--root-dir: ", ec.message()));
  worker_config_.agent_binary = SelfBinary();
  worker_config_.node_name = options_.node.name;
  worker_config_.node_ip = options_.node.internal_ip;
  worker_config_.pods_dir = options_.root_dir + "/pods";
  worker_config_.backoff = options_.backoff;
  worker_config_.log_rotate_bytes = options_.log_rotate_bytes;
  const char* path = getenv("PATH");
  worker_config_.base_env = {absl::StrCat("PATH=", path ? path : "/usr/local/bin:/usr/bin:/bin"),
                             "LANG=C.UTF-8"};

  auto server = LogServer::Start(
      options_.listen,
      [this](const std::string& ns, const std::string& pod, const std::string& container,
             bool previous) { return LookupLogs(ns, pod, container, previous); });
  if (!server.ok()) return server.status();
  log_server_ = std::move(*server);
  options_.node.kubelet_port = log_server_->port();

  EtcdObjectStoreOptions so;
  so.endpoints = options_.endpoints;
  auto store = EtcdObjectStore::Create(so);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  api_ = std::make_unique<ApiHandler>(*store_, "");
  client_ = std::make_unique<ObjectClient>(*api_, nullptr, "ganglion-agent");
  if (!store_->WaitReady(absl::Seconds(60))) {
    return absl::UnavailableError("the store's watch did not start within 60 s");
  }
  ready_since_ = absl::Now();
  absl::Status registered;
  for (int attempt = 0; attempt < 60; ++attempt) {
    registered = RegisterNode(*client_, options_.node, ready_since_);
    if (registered.ok()) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (!registered.ok()) return registered;
  if (auto node = client_->Get(TypeOf("", "nodes"), "", options_.node.name); node.ok()) {
    node_uid_ = (*node)["metadata"].value("uid", "");
  }
  (void)RenewLease(*client_, options_.node.name, node_uid_);
  spdlog::info("event=agent_registered node={} kubelet_port={} pod_cidr={}", options_.node.name,
               options_.node.kubelet_port, options_.node.pod_cidr);

  AdoptFromDisk();
  pods_ = std::make_unique<ObjectCache>(*store_, TypeOf("", "pods"));
  pods_->AddIndex("node", [](const Json& pod) {
    std::string node = NodeNameOf(pod);
    return node.empty() ? std::vector<std::string>{} : std::vector<std::string>{node};
  });
  const std::string me = options_.node.name;
  auto touch = [this, me](const ObjectPtr& pod) {
    if (pod && NodeNameOf(*pod) == me) Enqueue();
  };
  pods_->AddHandlers({touch,
                      [touch](const ObjectPtr& before, const ObjectPtr& after) {
                        touch(before);
                        touch(after);
                      },
                      touch});
  if (auto s = pods_->Start(); !s.ok()) return s;

  threads_.emplace_back([this] { SyncLoop(); });
  threads_.emplace_back([this] { HeartbeatLoop(); });
  threads_.emplace_back([this] { EventLoop(); });
  for (int i = 0; i < options_.prober_threads; ++i) threads_.emplace_back([this] { ProberLoop(); });
  return absl::OkStatus();
}

void Agent::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (pods_) pods_->Stop();
  if (log_server_) log_server_->Stop();
}

void Agent::Enqueue() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void Agent::AdoptFromDisk() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(worker_config_.pods_dir, ec)) {
    auto record = ReadPodRecord((entry.path() / "state.json").string());
    if (!record.ok()) {
      // A pod directory without readable state: nothing of it can be adopted.
      spdlog::warn("event=agent_state_unreadable dir={} error=\"{}\"", entry.path().string(),
                   std::string(record.status().message()));
      continue;
    }
    if (!record->pod_ip.empty()) ips_.Reserve(record->pod_ip);
    adopted_[record->uid] = std::move(*record);
  }
  spdlog::info("event=agent_adopt pods={}", adopted_.size());
}

void Agent::SyncLoop() {
  while (true) {
    absl::Time wake = absl::Now() + kSyncIntervalMax;
    for (auto& [uid, w] : workers_) wake = std::min(wake, w->NextWake());
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, absl::ToChronoTime(wake),
                     [&] { return stop_ || dirty_ || !probe_results_.empty(); });
      if (stop_) return;
      dirty_ = false;
    }
    SyncOnce(absl::Now());
  }
}

void Agent::SyncOnce(absl::Time now) {
  std::vector<ProbeDone> results;
  {
    std::lock_guard lock(mu_);
    results.swap(probe_results_);
  }
  for (const ProbeDone& r : results) {
    auto it = workers_.find(r.pod_uid);
    if (it != workers_.end()) {
      it->second->OnProbeResult(r.container, r.kind, r.result.success, r.result.message, now);
    }
  }
  std::map<std::string, ObjectPtr> pods;  // by uid
  for (const ObjectPtr& pod : pods_->ByIndex("node", options_.node.name)) {
    pods[(*pod)["metadata"].value("uid", "")] = pod;
  }
  // Adopted state: a pod still bound here continues; any other is stopped.
  for (auto& [uid, record] : adopted_) {
    auto worker = std::make_unique<PodWorker>(worker_config_, std::move(record));
    workers_[uid] = std::move(worker);
  }
  adopted_.clear();
  for (const auto& [uid, pod] : pods) {
    if (workers_.count(uid)) continue;
    const std::string phase = pod->contains("status") ? (*pod)["status"].value("phase", "") : "";
    const bool terminating = (*pod)["metadata"].contains("deletionTimestamp");
    // A finished pod is not run again (this agent forgot it, or never ran it).
    if ((phase == "Succeeded" || phase == "Failed") && !terminating) continue;
    PodRecord record;
    record.uid = uid;
    record.namespace_name = (*pod)["metadata"].value("namespace", "");
    record.name = (*pod)["metadata"].value("name", "");
    if (!terminating) {
      auto ip = ips_.Allocate();
      if (!ip.ok()) {
        spdlog::warn("event=agent_pod_ip_exhausted pod={}/{} error=\"{}\"", record.namespace_name,
                     record.name, std::string(ip.status().message()));
        continue;
      }
      record.pod_ip = *ip;
    }
    workers_[uid] = std::make_unique<PodWorker>(worker_config_, std::move(record));
  }
  std::vector<ProbeJob> jobs;
  std::vector<std::pair<Json, PodEvent>> events;
  std::map<std::string, std::pair<std::string, std::map<std::string, LogLocation>>> index;
  for (auto it = workers_.begin(); it != workers_.end();) {
    PodWorker& w = *it->second;
    auto pod_it = pods.find(it->first);
    const Json* pod = pod_it == pods.end() ? nullptr : pod_it->second.get();
    w.Sync(pod, now);
    if (pod != nullptr) {
      if (auto status = w.StatusToWrite()) WriteStatus(w, *pod, *status);
      if (w.ReadyToConfirmDelete()) ConfirmDelete(w, *pod);
      for (ProbeJob& j : w.TakeDueProbes(now)) jobs.push_back(std::move(j));
    }
    for (PodEvent& e : w.TakeEvents()) {
      if (pod != nullptr) events.emplace_back(*pod, std::move(e));
    }
    if (w.Done()) {
      spdlog::info("event=agent_pod_removed pod={}/{} uid={}", w.record().namespace_name,
                   w.record().name, it->first);
      if (!w.record().pod_ip.empty()) ips_.Release(w.record().pod_ip);
      w.RemoveFiles();
      it = workers_.erase(it);
      continue;
    }
    index[absl::StrCat(w.record().namespace_name, "/", w.record().name)] = {it->first,
                                                                            w.LogLocations()};
    ++it;
  }
  {
    std::lock_guard lock(mu_);
    log_index_ = std::move(index);
    for (ProbeJob& j : jobs) probe_queue_.push_back(std::move(j));
    for (auto& e : events) {
      if (events_.size() >= kEventsQueuedMax) events_.pop_front();
      events_.push_back(std::move(e));
    }
  }
  if (!jobs.empty() || !events.empty()) cv_.notify_all();
}

void Agent::WriteStatus(PodWorker& worker, const Json& pod, const Json& status) {
  const ResourceType& pods = TypeOf("", "pods");
  Json object = pod;
  for (int attempt = 0; attempt < kStatusWriteAttemptsMax; ++attempt) {
    object["status"] = status;
    auto written = client_->Update(pods, object, "status");
    if (written.ok()) {
      worker.MarkStatusWritten(status);
      return;
    }
    if (absl::IsNotFound(written.status())) return;
    if (!absl::IsAborted(written.status())) {
      spdlog::warn("event=agent_status_write_failed pod={}/{} error=\"{}\"",
                   worker.record().namespace_name, worker.record().name,
                   std::string(written.status().message()));
      return;  // retried at the next sync
    }
    // Conflict: re-read and write our status over the fresh object.
    auto fresh = client_->Get(pods, worker.record().namespace_name, worker.record().name);
    if (!fresh.ok()) return;
    if ((*fresh)["metadata"].value("uid", "") != worker.record().uid) return;
    object = std::move(*fresh);
  }
}

void Agent::ConfirmDelete(PodWorker& worker, const Json& pod) {
  DeleteOptions options;
  options.grace_period_seconds = 0;
  options.uid = worker.record().uid;
  auto s = client_->Delete(TypeOf("", "pods"), worker.record().namespace_name, worker.record().name,
                           options);
  if (!s.ok() && !absl::IsNotFound(s)) {
    spdlog::warn("event=agent_delete_confirm_failed pod={}/{} error=\"{}\"",
                 worker.record().namespace_name, worker.record().name, std::string(s.message()));
    return;
  }
  (void)pod;
  spdlog::info("event=agent_pod_deleted pod={}/{}", worker.record().namespace_name,
               worker.record().name);
}

void Agent::HeartbeatLoop() {
  absl::Time next_status = absl::Now() + options_.node_status_interval;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, absl::ToChronoMilliseconds(kLeaseRenewInterval), [&] { return stop_; });
      if (stop_) return;
    }
    if (auto s = RenewLease(*client_, options_.node.name, node_uid_); !s.ok()) {
      spdlog::warn("event=agent_lease_renew_failed node={} error=\"{}\"", options_.node.name,
                   std::string(s.message()));
    }
    if (absl::Now() >= next_status) {
      next_status = absl::Now() + options_.node_status_interval;
      // Re-registers too: a deleted Node object comes back.
      if (auto s = RegisterNode(*client_, options_.node, ready_since_); !s.ok()) {
        spdlog::warn("event=agent_node_status_failed node={} error=\"{}\"", options_.node.name,
                     std::string(s.message()));
      }
    }
  }
}

void Agent::EventLoop() {
  while (true) {
    std::pair<Json, PodEvent> next;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !events_.empty(); });
      if (stop_) return;
      next = std::move(events_.front());
      events_.pop_front();
    }
    const PodEvent& e = next.second;
    (void)client_->RecordEvent(next.first, e.type, e.reason, e.message);
  }
}

void Agent::ProberLoop() {
  while (true) {
    ProbeJob job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !probe_queue_.empty(); });
      if (stop_) return;
      job = std::move(probe_queue_.front());
      probe_queue_.pop_front();
    }
    ProbeResult result = RunProbe(job.spec, job.context);
    {
      std::lock_guard lock(mu_);
      probe_results_.push_back({job.pod_uid, job.container, job.kind, std::move(result)});
    }
    cv_.notify_all();
  }
}

LogSource Agent::LookupLogs(const std::string& ns, const std::string& pod,
                            const std::string& container, bool previous) {
  LogSource source;
  std::lock_guard lock(mu_);
  auto it = log_index_.find(absl::StrCat(ns, "/", pod));
  if (it == log_index_.end()) {
    source.http_code = 404;
    source.message =
        absl::StrCat("pod ", ns, "/", pod, " does not run on node ", options_.node.name);
    return source;
  }
  auto c = it->second.second.find(container);
  if (c == it->second.second.end()) {
    source.http_code = 400;
    source.message = absl::StrCat("container ", container, " is not valid for pod ", pod);
    return source;
  }
  const LogLocation& loc = c->second;
  source.dir = loc.dir;
  if (previous) {
    if (loc.run < 2) {
      source.http_code = 400;
      source.message = absl::StrCat("previous terminated container \"", container, "\" in pod \"",
                                    pod, "\" not found");
      return source;
    }
    source.run = loc.run - 1;
    source.still_running = [] { return false; };
    return source;
  }
  if (loc.run == 0) {
    source.http_code = 400;
    source.message = absl::StrCat("container \"", container, "\" in pod \"", pod,
                                  "\" is waiting to start: ContainerCreating");
    return source;
  }
  source.run = loc.run;
  const std::string key = it->first;
  const int run = loc.run;
  source.still_running = [this, key, container, run] {
    std::lock_guard lock(mu_);
    auto p = log_index_.find(key);
    if (p == log_index_.end()) return false;
    auto c = p->second.second.find(container);
    return c != p->second.second.end() && c->second.run == run && c->second.running;
  };
  return source;
}

}  // namespace ganglion::orchestrator::agent
