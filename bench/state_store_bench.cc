// The MVCC state store on RocksDB: batched applies of 256-byte puts, point
// reads at the current and at an old revision, and 1,000-key ranges. Data
// lives under $TMPDIR; the WAL is not synced (as in production, where the raft
// log carries durability).
//
//   build/bin/state_store_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "storage/state_store.h"

namespace ganglion::storage {
namespace {

constexpr int kKeys = 100000;
constexpr size_t kValueBytes = 256;

std::string Key(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "/registry/pods/%08d", i);
  return buf;
}

[[noreturn]] void Die(const absl::Status& s) {
  std::fprintf(stderr, "bench: %s\n", s.ToString().c_str());
  std::abort();
}

class BenchStore {
 public:
  explicit BenchStore(const std::string& name) {
    dir_ = std::filesystem::temp_directory_path() /
           ("ganglion-bench-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    auto s = StateStore::Open(dir_.string(), StateStoreOptions{});
    if (!s.ok()) Die(s.status());
    store_ = std::move(*s);
  }
  ~BenchStore() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Puts keys [from, to) with `value`, in Apply batches of `batch`.
  void PutBatch(const std::vector<std::string>& keys, const std::string& value) {
    std::vector<ApplyOp> ops;
    ops.reserve(keys.size());
    for (const std::string& k : keys) {
      etcdserverpb::PutRequest p;
      p.set_key(k);
      p.set_value(value);
      ops.push_back(ApplyOp{std::move(p), ++index_});
    }
    auto r = store_->Apply(ops, index_);
    if (!r.ok()) Die(r.status());
  }

  StateStore* store() { return store_.get(); }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<StateStore> store_;
  raft::Index index_ = 0;
};

// Puts of 256-byte values over 100,000 keys (each put updates an existing or
// creates a new key), `batch` puts per Apply (one RocksDB write batch).
// items_per_second is per CPU second of the apply thread (RocksDB's flushes
// and compactions run on their own threads); the Time column is wall time
// per batch.
// Arg 1 (if present and 1): a subscriber is attached, so every put also
// builds its event with the previous key-value (what the watch hub needs).
void BM_ApplyPuts(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  BenchStore bs("apply");
  uint64_t events = 0;
  if (state.range(1) == 1) {
    bs.store()->Subscribe([&](const std::vector<RevisionEvents>& batch) {
      for (const RevisionEvents& e : batch) events += e.events.size();
    });
  }
  const std::string value(kValueBytes, 'v');
  std::mt19937 rng(1);
  std::vector<std::string> keys(batch);
  int64_t puts = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& k : keys) k = Key(static_cast<int>(rng() % kKeys));
    state.ResumeTiming();
    bs.PutBatch(keys, value);
    puts += batch;
  }
  if (state.range(1) == 1 && events != static_cast<uint64_t>(puts))
    Die(absl::InternalError("events"));
  state.SetItemsProcessed(puts);
}
BENCHMARK(BM_ApplyPuts)->Args({64, 0})->Args({256, 0})->Args({1024, 0})->Args({256, 1});

// 100,000 keys, each written 5 times (500,000 revisions), loaded once.
BenchStore& Loaded() {
  static BenchStore* bs = [] {
    auto* b = new BenchStore("read");
    const std::string value(kValueBytes, 'v');
    std::vector<std::string> keys;
    for (int round = 0; round < 5; round++) {
      for (int i = 0; i < kKeys; i++) {
        keys.push_back(Key(i));
        if (keys.size() == 1000) {
          b->PutBatch(keys, value);
          keys.clear();
        }
      }
    }
    return b;
  }();
  return *bs;
}

void BM_GetCurrent(benchmark::State& state) {
  StateStore* s = Loaded().store();
  std::mt19937 rng(2);
  for (auto _ : state) {
    etcdserverpb::RangeRequest r;
    r.set_key(Key(static_cast<int>(rng() % kKeys)));
    auto resp = s->Range(r);
    if (!resp.ok() || resp->kvs_size() != 1) Die(resp.status());
    benchmark::DoNotOptimize(resp);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetCurrent);

// At revision 250,000: the middle of each key's history.
void BM_GetOldRevision(benchmark::State& state) {
  StateStore* s = Loaded().store();
  std::mt19937 rng(3);
  for (auto _ : state) {
    etcdserverpb::RangeRequest r;
    r.set_key(Key(static_cast<int>(rng() % kKeys)));
    r.set_revision(250000);
    auto resp = s->Range(r);
    if (!resp.ok() || resp->kvs_size() != 1) Die(resp.status());
    benchmark::DoNotOptimize(resp);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetOldRevision);

// 1,000 consecutive keys; arg 0: current revision, 1: revision 250,000.
void BM_Range1000(benchmark::State& state) {
  StateStore* s = Loaded().store();
  std::mt19937 rng(4);
  for (auto _ : state) {
    int start = static_cast<int>(rng() % (kKeys - 1000));
    etcdserverpb::RangeRequest r;
    r.set_key(Key(start));
    r.set_range_end(Key(start + 1000));
    if (state.range(0) == 1) r.set_revision(250000);
    auto resp = s->Range(r);
    if (!resp.ok() || resp->kvs_size() != 1000) Die(resp.status());
    benchmark::DoNotOptimize(resp);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Range1000)->Arg(0)->Arg(1);

}  // namespace
}  // namespace ganglion::storage

BENCHMARK_MAIN();
