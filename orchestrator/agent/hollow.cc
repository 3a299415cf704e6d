#include "orchestrator/agent/hollow.h"

#include <spdlog/spdlog.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator::agent {

namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string NodeNameOf(const Json& pod) {
  auto spec = pod.find("spec");
  if (spec == pod.end()) return "";
  auto n = spec->find("nodeName");
  return n != spec->end() && n->is_string() ? n->get<std::string>() : "";
}

// The status a hollow node reports for a pod: every container running and ready.
Json RunningStatus(const Json& pod, const std::string& pod_ip, const std::string& host_ip,
                   absl::Time now) {
  Json status = pod.value("status", Json::object());
  const std::string t = Rfc3339(now);
  Json statuses = Json::array();
  for (const Json& c : pod["spec"].value("containers", Json::array())) {
    statuses.push_back({{"name", c.value("name", "")},
                        {"image", c.value("image", "")},
                        {"imageID", ""},
                        {"containerID", absl::StrCat("hollow://", c.value("name", ""))},
                        {"ready", true},
                        {"started", true},
                        {"restartCount", 0},
                        {"lastState", Json::object()},
                        {"state", {{"running", {{"startedAt", t}}}}}});
  }
  Json conditions = Json::array();
  for (const char* type :
       {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
    conditions.push_back({{"type", type},
                          {"status", "True"},
                          {"lastProbeTime", nullptr},
                          {"lastTransitionTime", t}});
  }
  status["phase"] = "Running";
  status["conditions"] = conditions;
  status["containerStatuses"] = statuses;
  status["hostIP"] = host_ip;
  status["hostIPs"] = Json::array({{{"ip", host_ip}}});
  status["podIP"] = pod_ip;
  status["podIPs"] = Json::array({{{"ip", pod_ip}}});
  status["startTime"] = t;
  return status;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HollowFleet>> HollowFleet::Start(HollowOptions options) {
  std::unique_ptr<HollowFleet> fleet(new HollowFleet(std::move(options)));
  if (auto s = fleet->Init(); !s.ok()) return s;
  return fleet;
}

HollowFleet::HollowFleet(HollowOptions options) : options_(std::move(options)) {}

HollowFleet::~HollowFleet() {
  Stop();
}

void HollowFleet::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (pods_) pods_->Stop();
}

absl::Status HollowFleet::Init() {
  EtcdObjectStoreOptions so;
  so.endpoints = options_.endpoints;
  auto store = EtcdObjectStore::Create(so);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  api_ = std::make_unique<ApiHandler>(*store_, "");
  client_ = std::make_unique<ObjectClient>(*api_, nullptr, "ganglion-agent-hollow");
  if (!store_->WaitReady(absl::Seconds(60))) {
    return absl::UnavailableError("the store's watch did not start within 60 s");
  }
  const absl::Time now = absl::Now();
  for (int i = 0; i < options_.count; ++i) {
    const std::string name = absl::StrCat(options_.name_prefix, i);
    names_.insert(name);
    ips_.emplace(name, PodIpAllocator(DefaultBlockFor(name)));
    // Renewals spread over the interval so they do not all come at once.
    next_lease_.push_back(now + kLeaseRenewInterval * i / options_.count);
    next_status_.push_back(now + options_.node_status_interval * i / options_.count);
    node_uids_.push_back("");
  }
  // Register every node (spread over the pool) before following pods.
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> registrars;
  for (int t = 0; t < options_.threads; ++t) {
    registrars.emplace_back([&] {
      for (int i = next++; i < options_.count; i = next++) {
        NodeConfig node = options_.node_template;
        node.name = absl::StrCat(options_.name_prefix, i);
        node.pod_cidr = DefaultBlockFor(node.name).ToString();
        node.labels["ganglion.io/hollow"] = "true";
        absl::Status s = RegisterNode(*client_, node, now);
        if (s.ok()) s = RenewLease(*client_, node.name, "");
        if (!s.ok()) {
          ++failed;
          spdlog::warn("event=hollow_register_failed node={} error=\"{}\"", node.name,
                       std::string(s.message()));
        }
      }
    });
  }
  for (auto& t : registrars) t.join();
  if (failed > 0) {
    return absl::UnavailableError(absl::StrCat(failed.load(), " hollow nodes failed to register"));
  }
  spdlog::info("event=hollow_registered nodes={}", options_.count);
  pods_ = std::make_unique<ObjectCache>(*store_, TypeOf("", "pods"));
  auto touch = [this](const ObjectPtr& pod) {
    if (!pod || !names_.count(NodeNameOf(*pod))) return;
    const std::string key = ObjectKey(*pod);
    {
      std::lock_guard lock(mu_);
      if (!queued_.insert(key).second) return;
      queue_.push_back(key);
    }
    cv_.notify_one();
  };
  pods_->AddHandlers({touch, [touch](const ObjectPtr&, const ObjectPtr& after) { touch(after); },
                      [this](const ObjectPtr& pod) {
                        std::lock_guard lock(mu_);
                        auto it = pod_ips_.find((*pod)["metadata"].value("uid", ""));
                        if (it == pod_ips_.end()) return;
                        ips_.at(NodeNameOf(*pod)).Release(it->second);
                        pod_ips_.erase(it);
                      }});
  if (auto s = pods_->Start(); !s.ok()) return s;
  for (int t = 0; t < options_.threads; ++t) threads_.emplace_back([this, t] { Worker(t); });
  return absl::OkStatus();
}

void HollowFleet::Worker(int index) {
  (void)index;
  while (true) {
    std::string key;
    int renew = -1;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      if (!queue_.empty()) {
        key = queue_.front();
        queue_.pop_front();
        queued_.erase(key);
      } else {
        // Idle: renew the node whose turn it is, if due.
        const int i = next_node_;
        if (absl::Now() >= next_lease_[i] || absl::Now() >= next_status_[i]) {
          renew = i;
          next_node_ = (next_node_ + 1) % options_.count;
        }
      }
      // Leases must not wait behind a long pod queue: every 16th turn renews.
      static thread_local int turns = 0;
      if (renew < 0 && ++turns % 16 == 0) {
        const int i = next_node_;
        if (absl::Now() >= next_lease_[i]) {
          renew = i;
          next_node_ = (next_node_ + 1) % options_.count;
        }
      }
    }
    if (!key.empty()) SyncPod(key);
    if (renew >= 0) RenewNode(renew);
  }
}

void HollowFleet::RenewNode(int i) {
  const absl::Time now = absl::Now();
  const std::string name = absl::StrCat(options_.name_prefix, i);
  bool lease_due, status_due;
  {
    std::lock_guard lock(mu_);
    lease_due = now >= next_lease_[i];
    status_due = now >= next_status_[i];
    if (lease_due) next_lease_[i] = now + kLeaseRenewInterval;
    if (status_due) next_status_[i] = now + options_.node_status_interval;
  }
  if (lease_due) {
    if (auto s = RenewLease(*client_, name, ""); !s.ok()) {
      spdlog::warn("event=hollow_lease_failed node={} error=\"{}\"", name,
                   std::string(s.message()));
    }
  }
  if (status_due) {
    NodeConfig node = options_.node_template;
    node.name = name;
    node.pod_cidr = DefaultBlockFor(name).ToString();
    (void)UpdateNodeStatus(*client_, node, now);
  }
}

void HollowFleet::SyncPod(const std::string& key) {
  ObjectPtr pod = pods_->Get(key);
  if (!pod) return;
  const Json& meta = (*pod)["metadata"];
  const std::string ns = meta.value("namespace", "");
  const std::string name = meta.value("name", "");
  const std::string uid = meta.value("uid", "");
  const std::string node = NodeNameOf(*pod);
  const ResourceType& pods = TypeOf("", "pods");
  if (meta.contains("deletionTimestamp")) {
    DeleteOptions options;
    options.grace_period_seconds = 0;
    options.uid = uid;
    auto s = client_->Delete(pods, ns, name, options);
    if (!s.ok() && !absl::IsNotFound(s)) {
      spdlog::warn("event=hollow_delete_failed pod={} error=\"{}\"", key, std::string(s.message()));
    }
    return;
  }
  const Json status = pod->value("status", Json::object());
  if (status.value("phase", "") == "Running" && !status.value("podIP", "").empty()) return;
  std::string ip;
  {
    std::lock_guard lock(mu_);
    auto it = pod_ips_.find(uid);
    if (it != pod_ips_.end()) {
      ip = it->second;
    } else {
      auto allocated = ips_.at(node).Allocate();
      if (!allocated.ok()) {
        spdlog::warn("event=hollow_pod_ip_exhausted pod={} node={}", key, node);
        return;
      }
      ip = *allocated;
      pod_ips_[uid] = ip;
    }
  }
  Json object = *pod;
  for (int attempt = 0; attempt < 3; ++attempt) {
    object["status"] = RunningStatus(object, ip, options_.node_template.internal_ip, absl::Now());
    auto written = client_->Update(pods, object, "status");
    if (written.ok() || absl::IsNotFound(written.status())) return;
    if (!absl::IsAborted(written.status())) {
      spdlog::warn("event=hollow_status_failed pod={} error=\"{}\"", key,
                   std::string(written.status().message()));
      return;
    }
    auto fresh = client_->Get(pods, ns, name);
    if (!fresh.ok() || (*fresh)["metadata"].value("uid", "") != uid) return;
    object = std::move(*fresh);
  }
}

}  // namespace ganglion::orchestrator::agent
