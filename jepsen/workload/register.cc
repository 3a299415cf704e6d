// Register workload: many independent keys r/<n>, each read (linearizable),
// written, or compare-and-set by a Txn; a key takes at most kOpsPerKeyMax
// operations and is then replaced by a fresh one, which keeps each key's
// linearizability search small.
#include <map>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jepsen/workload/common.h"

namespace ganglion::jepsen {
namespace {

constexpr int kOpsPerKeyMax = 200;
constexpr int kActiveKeys = 4;
constexpr int kValues = 5;  // small, so compare-and-set often succeeds

class RegisterWorkload : public Workload {
 public:
  RegisterWorkload(Recorder& recorder, WorkloadOptions options)
      : recorder_(recorder), options_(std::move(options)) {
    for (int i = 0; i < kActiveKeys; i++) slots_.push_back({next_key_++, 0});
  }
  std::string name() const override { return "register"; }

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
    LinearizabilityOptions lo;
    lo.time_limit = std::chrono::milliseconds(60000);
    LinearizabilityResult r = CheckRegisters(history, lo);
    CheckResult out;
    out.checker = "linearizable";
    out.verdict = r.verdict;
    size_t ops = 0, invalid = 0, unknown = 0;
    nlohmann::json bad = nlohmann::json::array();
    for (const auto& [key, kr] : r.keys) {
      ops += kr.operations;
      if (kr.verdict == Verdict::kUnknown) unknown++;
      if (kr.verdict != Verdict::kInvalid) continue;
      invalid++;
      if (bad.size() >= 10) continue;
      std::vector<int64_t> prefix = kr.longest_prefix;
      if (prefix.size() > 20) prefix.erase(prefix.begin(), prefix.end() - 20);
      bad.push_back({{"key", key},
                     {"detail", kr.detail},
                     {"stuck_op", OpsJson(history, {kr.stuck_op})},
                     {"linearized_before_it", OpsJson(history, prefix)}});
    }
    out.summary = absl::StrCat(r.keys.size(), " keys, ", ops, " operations checked; ", invalid,
                               " keys not linearizable, ", unknown, " unknown (time limit)");
    out.details = {{"keys", r.keys.size()}, {"operations", ops}, {"invalid_keys", bad}};
    return {out};
  }

 private:
  struct Slot {
    int64_t key = 0;
    int ops = 0;
  };

  std::string TakeKey(std::mt19937_64& rng) {
    std::lock_guard lock(mu_);
    Slot& s = slots_[rng() % slots_.size()];
    if (s.ops >= kOpsPerKeyMax) s = {next_key_++, 0};
    s.ops++;
    return absl::StrCat("r/", s.key);
  }

  void Run(int t, const std::atomic<bool>& stop) {
    client::Client& c = *clients_[t];
    std::mt19937_64 rng(options_.seed * 7919 + t);
    int process = options_.process_base + t;
    Pace pace(options_.op_interval);
    while (!stop) {
      pace.Wait();
      Operation op;
      op.process = process;
      op.key = TakeKey(rng);
      const int dice = static_cast<int>(rng() % 4);
      op.start_ns = recorder_.NowNs();
      if (dice < 2) {
        op.f = "read";
        auto r = c.kv().Get(op.key);
        op.end_ns = recorder_.NowNs();
        if (r.ok()) {
          op.type = OpType::kOk;
          int64_t v = 0;
          if (r->kvs_size() > 0 && absl::SimpleAtoi(r->kvs(0).value(), &v)) op.value = v;
        } else {
          // A read changes nothing, so an unanswered one is simply failed.
          op.type = OpType::kFail;
          op.error = r.status().ToString();
        }
      } else if (dice == 2) {
        op.f = "write";
        op.value = static_cast<int64_t>(rng() % kValues);
        auto r = c.kv().Put(op.key, absl::StrCat(*op.value));
        op.end_ns = recorder_.NowNs();
        op.type = r.ok() ? OpType::kOk : ClassifyWriteError(r.status());
        if (!r.ok()) op.error = r.status().ToString();
      } else {
        op.f = "cas";
        op.value = static_cast<int64_t>(rng() % kValues);
        op.value2 = static_cast<int64_t>(rng() % kValues);
        client::Txn txn;
        txn.If(client::Value(op.key) == absl::StrCat(*op.value))
            .Then(client::Op::Put(op.key, absl::StrCat(*op.value2)));
        auto r = c.kv().Commit(txn);
        op.end_ns = recorder_.NowNs();
        if (r.ok()) {
          op.type = r->succeeded() ? OpType::kOk : OpType::kFail;
          if (!r->succeeded()) op.error = "compare failed";
        } else {
          op.type = ClassifyWriteError(r.status());
          op.error = r.status().ToString();
        }
      }
      const bool indeterminate = op.type == OpType::kInfo;
      recorder_.Add(std::move(op));
      // An indeterminate operation stays open forever; this thread carries
      // on as a new process, as Jepsen's do.
      if (indeterminate) process += options_.concurrency;
    }
  }

  Recorder& recorder_;
  const WorkloadOptions options_;
  std::vector<std::unique_ptr<client::Client>> clients_;
  WorkerPool pool_;
  std::mutex mu_;
  std::vector<Slot> slots_;  // guarded by mu_
  int64_t next_key_ = 0;     // guarded by mu_
};

}  // namespace

std::unique_ptr<Workload> MakeRegisterWorkload(Recorder& recorder, const WorkloadOptions& options) {
  return std::make_unique<RegisterWorkload>(recorder, options);
}

}  // namespace ganglion::jepsen
