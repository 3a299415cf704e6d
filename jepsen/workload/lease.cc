// Lease workload: each thread grants a short lease, attaches a key to it,
// renews it by hand (KeepAliveOnce, recording every renewal that succeeded)
// while reading the key, then stops renewing and moves on to the next lease.
// After the run, once every lease's TTL has passed, each key is read again.
// A key must be there for every read that ended before a later renewal
// succeeded, and gone once renewals stopped and the TTL passed.
#include "absl/strings/str_cat.h"
#include "jepsen/check/events.h"
#include "jepsen/workload/common.h"

namespace ganglion::jepsen {
namespace {

constexpr int64_t kTtlS = 3;
constexpr std::chrono::seconds kKeepFor{6};
constexpr std::chrono::milliseconds kRenewEvery{1000};
constexpr std::chrono::milliseconds kReadEvery{250};
// Past the TTL: the leader proposes the revocation, a new leader first
// extends every lease by an election timeout, and the expiry scan is
// periodic.
constexpr int64_t kGraceNs = 5'000'000'000;
constexpr std::chrono::seconds kFinishWaitMax{30};

class LeaseWorkload : public Workload {
 public:
  LeaseWorkload(Recorder& recorder, WorkloadOptions options)
      : recorder_(recorder), options_(std::move(options)) {}
  std::string name() const override { return "lease"; }

  absl::Status Start() override {
    auto clients = MakeClients(options_, options_.concurrency);
    if (!clients.ok()) return clients.status();
    clients_ = *std::move(clients);
    pool_.Start(options_.concurrency,
                [this](int t, const std::atomic<bool>& stop) { Run(t, stop); });
    return absl::OkStatus();
  }
  void Stop() override { pool_.Stop(); }

  absl::Status Finish() override {
    int64_t wait_until_ns = 0;
    for (const LeaseLife& l : lives_) {
      wait_until_ns = std::max(wait_until_ns, std::max(l.last_renewal_end_ns, l.put_end_ns) +
                                                  kTtlS * 1'000'000'000 + kGraceNs);
    }
    const int64_t wait_ns = std::min<int64_t>(wait_until_ns - recorder_.NowNs(),
                                              kFinishWaitMax.count() * 1'000'000'000);
    if (wait_ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait_ns));
    for (LeaseLife& l : lives_) {
      Operation op = Begin(options_.process_base + 999, l.key);
      auto r = clients_[0]->kv().Get(l.key);
      op.end_ns = recorder_.NowNs();
      if (!r.ok()) {
        op.type = OpType::kFail;
        op.error = r.status().ToString();
        recorder_.Add(op);
        continue;
      }
      op.type = OpType::kOk;
      op.value = r->kvs_size();
      l.reads.push_back({recorder_.Add(op), op.start_ns, op.end_ns, r->kvs_size() > 0});
    }
    return absl::OkStatus();
  }

  std::vector<CheckResult> Check(const std::vector<Operation>& history) override {
    EventCheckResult r = CheckLeases(lives_, kGraceNs);
    size_t reads = 0;
    for (const LeaseLife& l : lives_) reads += l.reads.size();
    CheckResult out;
    out.checker = "lease";
    out.verdict = r.verdict;
    out.summary = absl::StrCat(lives_.size(), " leases, ", reads, " reads of their keys; ",
                               r.problems.size(), " problems");
    out.details = {{"problems", r.problems}, {"ops", OpsJson(history, r.ops)}};
    return {out};
  }

 private:
  Operation Begin(int process, const std::string& key) {
    Operation op;
    op.process = process;
    op.f = "lease-read";
    op.key = key;
    op.start_ns = recorder_.NowNs();
    return op;
  }

  void Run(int t, const std::atomic<bool>& stop) {
    client::Client& c = *clients_[t];
    const int process = options_.process_base + t;
    for (int n = 0; !stop; n++) {
      auto grant = c.lease().Grant(kTtlS);
      if (!grant.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      LeaseLife life;
      life.lease_id = grant->id();
      life.ttl_s = kTtlS;
      life.key = absl::StrCat("ls/", t, "-", n);
      Operation put;
      put.process = process;
      put.f = "lease-put";
      put.key = life.key;
      put.start_ns = recorder_.NowNs();
      client::PutOptions po;
      po.lease = life.lease_id;
      auto p = c.kv().Put(life.key, "v", po);
      put.end_ns = recorder_.NowNs();
      put.type = p.ok() ? OpType::kOk : ClassifyWriteError(p.status());
      if (!p.ok()) put.error = p.status().ToString();
      recorder_.Add(put);
      if (!p.ok()) continue;  // attached or not, unknown: not checked
      life.put_end_ns = put.end_ns;
      const auto keep_until = std::chrono::steady_clock::now() + kKeepFor;
      auto next_renew = std::chrono::steady_clock::now() + kRenewEvery;
      while (!stop && std::chrono::steady_clock::now() < keep_until) {
        if (std::chrono::steady_clock::now() >= next_renew) {
          Operation renew;
          renew.process = process;
          renew.f = "lease-renew";
          renew.key = life.key;
          renew.start_ns = recorder_.NowNs();
          auto k = c.lease().KeepAliveOnce(life.lease_id);
          renew.end_ns = recorder_.NowNs();
          renew.type = k.ok() && k->ttl() > 0 ? OpType::kOk : OpType::kFail;
          if (!k.ok()) renew.error = k.status().ToString();
          if (k.ok() && k->ttl() <= 0) renew.error = "lease not found";
          recorder_.Add(renew);
          if (renew.type == OpType::kOk) {
            life.renewal_start_ns.push_back(renew.start_ns);
            life.last_renewal_end_ns = renew.end_ns;
          }
          next_renew = std::chrono::steady_clock::now() + kRenewEvery;
        }
        Operation read = Begin(process, life.key);
        auto r = c.kv().Get(life.key);
        read.end_ns = recorder_.NowNs();
        read.type = r.ok() ? OpType::kOk : OpType::kFail;
        if (r.ok()) {
          read.value = r->kvs_size();
          life.reads.push_back(
              {recorder_.Add(read), read.start_ns, read.end_ns, r->kvs_size() > 0});
        } else {
          read.error = r.status().ToString();
          recorder_.Add(read);
        }
        std::this_thread::sleep_for(kReadEvery);
      }
      life.stopped_ns = recorder_.NowNs();
      std::lock_guard lock(mu_);
      lives_.push_back(std::move(life));
    }
  }

  Recorder& recorder_;
  const WorkloadOptions options_;
  std::vector<std::unique_ptr<client::Client>> clients_;
  WorkerPool pool_;
  std::mutex mu_;
  std::vector<LeaseLife> lives_;  // guarded by mu_ while the threads run
};

}  // namespace

std::unique_ptr<Workload> MakeLeaseWorkload(Recorder& recorder, const WorkloadOptions& options) {
  return std::make_unique<LeaseWorkload>(recorder, options);
}

}  // namespace ganglion::jepsen
