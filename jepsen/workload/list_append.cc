// List-append workload: transactions of 1 to 4 micro-operations, each an
// append of a unique value to a key's list or a read of the list, over a
// few keys la/<n> at a time. A list is stored as "1,2,3". A transaction is
// an optimistic read-modify-write: one read-only Txn reads every key it
// touches (one revision), then one Txn writes the new lists only if no key
// changed since (mod revision compares). A failed compare is a definite
// failure; an unanswered write is info. Checked the way Elle checks.
#include "jepsen/check/list_append.h"

#include <map>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "jepsen/workload/common.h"

namespace ganglion::jepsen {
namespace {

constexpr int kActiveKeys = 6;
constexpr int kAppendsPerKeyMax = 100;  // keeps lists, and the reads of them, short
constexpr int kMicroOpsMax = 4;

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (absl::SimpleAtoi(part, &v)) out.push_back(v);
  }
  return out;
}

class ListAppendWorkload : public Workload {
 public:
  ListAppendWorkload(Recorder& recorder, WorkloadOptions options)
      : recorder_(recorder), options_(std::move(options)) {
    for (int i = 0; i < kActiveKeys; i++) slots_.push_back({next_key_++, 0});
  }
  std::string name() const override { return "list-append"; }

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
    ListAppendResult r = CheckListAppend(history);
    CheckResult out;
    out.checker = "list-append";
    out.verdict = r.verdict;
    std::map<std::string, int> counts;
    nlohmann::json anomalies = nlohmann::json::array();
    for (const Anomaly& a : r.anomalies) {
      counts[a.type]++;
      if (anomalies.size() < 20) {
        anomalies.push_back(
            {{"type", a.type}, {"explanation", a.explanation}, {"ops", OpsJson(history, a.ops)}});
      }
    }
    out.summary = absl::StrCat(
        r.transactions, " committed transactions; anomalies: ",
        counts.empty() ? "none" : absl::StrJoin(counts, ", ", [](std::string* s, const auto& kv) {
          absl::StrAppend(s, kv.first, " x", kv.second);
        }));
    out.details = {{"transactions", r.transactions}, {"anomalies", anomalies}};
    return {out};
  }

 private:
  struct Slot {
    int64_t key = 0;
    int appends = 0;
  };

  // Picks the keys and values of one transaction. Values are unique per key
  // (a global counter), as Elle requires.
  std::vector<MicroOp> Plan(std::mt19937_64& rng) {
    std::lock_guard lock(mu_);
    const int n = 1 + static_cast<int>(rng() % kMicroOpsMax);
    std::vector<MicroOp> txn;
    for (int i = 0; i < n; i++) {
      Slot& s = slots_[rng() % slots_.size()];
      MicroOp m;
      m.key = absl::StrCat("la/", s.key);
      if (rng() % 2 == 0) {
        m.kind = MicroOp::kAppend;
        m.value = next_value_++;
        if (++s.appends >= kAppendsPerKeyMax) s = {next_key_++, 0};
      } else {
        m.kind = MicroOp::kRead;
      }
      txn.push_back(std::move(m));
    }
    return txn;
  }

  void Run(int t, const std::atomic<bool>& stop) {
    client::Client& c = *clients_[t];
    std::mt19937_64 rng(options_.seed * 104729 + t);
    int process = options_.process_base + t;
    Pace pace(options_.op_interval);
    while (!stop) {
      pace.Wait();
      Operation op;
      op.process = process;
      op.f = "txn";
      op.txn = Plan(rng);
      op.start_ns = recorder_.NowNs();
      Execute(c, op);
      op.end_ns = recorder_.NowNs();
      const bool indeterminate = op.type == OpType::kInfo;
      recorder_.Add(std::move(op));
      if (indeterminate) process += options_.concurrency;
    }
  }

  void Execute(client::Client& c, Operation& op) {
    std::map<std::string, std::pair<std::vector<int64_t>, int64_t>> state;  // list, mod rev
    client::Txn read;
    for (const MicroOp& m : op.txn) {
      if (!state.contains(m.key)) {
        state[m.key] = {};
        read.Then(client::Op::Get(m.key));
      }
    }
    auto r = c.kv().Commit(read);
    if (!r.ok()) {
      op.type = OpType::kFail;  // nothing was written yet
      op.error = r.status().ToString();
      return;
    }
    for (const auto& resp : r->responses()) {
      for (const auto& kv : resp.response_range().kvs()) {
        state[kv.key()] = {ParseList(kv.value()), kv.mod_revision()};
      }
    }
    // Apply the micro-ops to the snapshot: reads see this transaction's own
    // earlier appends.
    std::map<std::string, std::vector<int64_t>> lists;
    for (const auto& [k, v] : state) lists[k] = v.first;
    std::set<std::string> written;
    for (MicroOp& m : op.txn) {
      if (m.kind == MicroOp::kRead) {
        m.read = lists[m.key];
      } else {
        lists[m.key].push_back(m.value);
        written.insert(m.key);
      }
    }
    if (written.empty()) {
      op.type = OpType::kOk;
      return;
    }
    client::Txn write;
    for (const auto& [k, v] : state) write.If(client::ModRevision(k) == v.second);
    for (const std::string& k : written) {
      write.Then(client::Op::Put(k, absl::StrJoin(lists[k], ",")));
    }
    auto w = c.kv().Commit(write);
    if (w.ok()) {
      op.type = w->succeeded() ? OpType::kOk : OpType::kFail;
      if (!w->succeeded()) op.error = "conflict";
    } else {
      op.type = ClassifyWriteError(w.status());
      op.error = w.status().ToString();
    }
    if (op.type != OpType::kOk) {
      // What it would have read is unknown unless it committed.
      for (MicroOp& m : op.txn) {
        if (m.kind == MicroOp::kRead) m.read.reset();
      }
    }
  }

  Recorder& recorder_;
  const WorkloadOptions options_;
  std::vector<std::unique_ptr<client::Client>> clients_;
  WorkerPool pool_;
  std::mutex mu_;
  std::vector<Slot> slots_;  // guarded by mu_
  int64_t next_key_ = 0;     // guarded by mu_
  int64_t next_value_ = 1;   // guarded by mu_
};

}  // namespace

std::unique_ptr<Workload> MakeListAppendWorkload(Recorder& recorder,
                                                 const WorkloadOptions& options) {
  return std::make_unique<ListAppendWorkload>(recorder, options);
}

}  // namespace ganglion::jepsen
