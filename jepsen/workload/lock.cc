// Lock workload: clients contend for one Mutex of the client library (each
// with its own session), and while holding it make fenced writes: a Txn that
// puts to a shared key only if the holder's lock key still has the fencing
// token as its create revision. The accepted writes, in revision order, must
// never interleave between holders (see check/events.h).
#include <map>

#include "absl/strings/str_cat.h"
#include "client/concurrency/mutex.h"
#include "client/concurrency/session.h"
#include "jepsen/check/events.h"
#include "jepsen/workload/common.h"

namespace ganglion::jepsen {
namespace {

constexpr char kLockPrefix[] = "lk/mutex/";
constexpr char kDataKey[] = "lk/data";  // outside the lock's prefix
constexpr int kWritesPerHold = 3;
constexpr int64_t kSessionTtlS = 3;
constexpr auto kLockTimeout = absl::Seconds(5);

class LockWorkload : public Workload {
 public:
  LockWorkload(Recorder& recorder, WorkloadOptions options)
      : recorder_(recorder), options_(std::move(options)) {}
  std::string name() const override { return "lock"; }

  absl::Status Start() override {
    auto clients = MakeClients(options_, options_.concurrency);
    if (!clients.ok()) return clients.status();
    clients_ = *std::move(clients);
    pool_.Start(options_.concurrency,
                [this](int t, const std::atomic<bool>& stop) { Run(t, stop); });
    return absl::OkStatus();
  }
  void Stop() override { pool_.Stop(); }

  std::vector<CheckResult> Check(const std::vector<Operation>& history) override {
    std::vector<FencedWrite> writes;
    {
      std::lock_guard lock(mu_);
      writes = writes_;
    }
    EventCheckResult r = CheckFencedWrites(writes);
    std::map<int64_t, int> holders;
    for (const FencedWrite& w : writes) holders[w.token]++;
    CheckResult out;
    out.checker = "lock";
    out.verdict = r.verdict;
    out.summary = absl::StrCat(writes.size(), " accepted fenced writes by ", holders.size(),
                               " holders; ", r.problems.size(), " problems");
    out.details = {{"problems", r.problems}, {"ops", OpsJson(history, r.ops)}};
    return {out};
  }

 private:
  Operation Begin(int process, const char* f) {
    Operation op;
    op.process = process;
    op.f = f;
    op.key = kDataKey;
    op.start_ns = recorder_.NowNs();
    return op;
  }

  void Run(int t, const std::atomic<bool>& stop) {
    client::Client& c = *clients_[t];
    int process = options_.process_base + t;
    Pace pace(options_.op_interval);
    std::unique_ptr<client::Session> session;
    while (!stop) {
      pace.Wait();
      if (!session || session->lost()) {
        session.reset();
        client::SessionOptions so;
        so.ttl_s = kSessionTtlS;
        auto s = client::Session::Create(c, so);
        if (!s.ok()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        session = *std::move(s);
      }
      client::Mutex mutex(*session, kLockPrefix);
      Operation acquire = Begin(process, "acquire");
      absl::Status locked = mutex.Lock(kLockTimeout);
      acquire.end_ns = recorder_.NowNs();
      acquire.type = locked.ok() ? OpType::kOk : OpType::kFail;
      if (!locked.ok()) acquire.error = locked.ToString();
      acquire.value = locked.ok() ? std::optional<int64_t>(mutex.fencing_token()) : std::nullopt;
      recorder_.Add(acquire);
      if (!locked.ok()) continue;
      const int64_t token = mutex.fencing_token();
      for (int k = 0; k < kWritesPerHold && !stop; k++) {
        Operation op = Begin(process, "fenced-write");
        op.value = token;
        client::Txn txn;
        txn.If(mutex.IsOwner()).Then(client::Op::Put(kDataKey, absl::StrCat(token, "/", k)));
        auto r = c.kv().Commit(txn);
        op.end_ns = recorder_.NowNs();
        if (r.ok()) {
          op.type = r->succeeded() ? OpType::kOk : OpType::kFail;
          if (!r->succeeded()) op.error = "not the owner any more";
        } else {
          op.type = ClassifyWriteError(r.status());
          op.error = r.status().ToString();
        }
        const int64_t index = recorder_.Add(op);
        if (r.ok() && r->succeeded()) {
          std::lock_guard lock(mu_);
          writes_.push_back({index, process, token, r->header().revision()});
        }
        if (op.type == OpType::kInfo) {
          process += options_.concurrency;
          break;
        }
        if (op.type == OpType::kFail) break;
      }
      Operation release = Begin(process, "release");
      absl::Status unlocked = mutex.Unlock();
      release.end_ns = recorder_.NowNs();
      release.type = unlocked.ok() ? OpType::kOk : ClassifyWriteError(unlocked);
      if (!unlocked.ok()) {
        release.error = unlocked.ToString();
        session.reset();  // revoking the lease frees the lock for the others
      }
      recorder_.Add(release);
    }
  }

  Recorder& recorder_;
  const WorkloadOptions options_;
  std::vector<std::unique_ptr<client::Client>> clients_;
  WorkerPool pool_;
  std::mutex mu_;
  std::vector<FencedWrite> writes_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<Workload> MakeLockWorkload(Recorder& recorder, const WorkloadOptions& options) {
  return std::make_unique<LockWorkload>(recorder, options);
}

}  // namespace ganglion::jepsen
