// Proposals committed per second through a 3-member in-memory cluster: no I/O,
// messages delivered in-process, every member persisting to MemoryStorage and
// applying. Measures the Raft core's own cost per proposal.
//
//   build/bin/raft_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <string>

#include "raft/testing/test_cluster.h"

namespace ganglion::raft {
namespace {

testing::TestCluster ElectedCluster() {
  testing::TestCluster c({1, 2, 3});
  c.TickElection(1);
  c.Stabilize();
  if (c.Leader() != 1) Fatal("bench: no leader");
  return c;
}

// Proposes `batch` entries of `value_bytes` each, then runs the cluster until
// all of them are committed and applied on every member.
void BM_ProposeCommit(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const std::string value(static_cast<size_t>(state.range(1)), 'v');
  testing::TestCluster c = ElectedCluster();
  int64_t committed = 0;
  for (auto _ : state) {
    for (int i = 0; i < batch; i++) {
      if (!c.node(1).Propose(value).ok()) Fatal("bench: proposal dropped");
    }
    c.Stabilize();
    committed += batch;
    state.PauseTiming();
    // Keep memory flat: compact what every member applied.
    for (NodeId id : c.ids()) {
      Index applied = c.raft(id).log().applied();
      if (applied > c.storage(id).FirstIndex() + 1024) c.CompactTo(id, applied - 512);
      c.member(id).applied.clear();
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(committed);
  state.counters["proposals_per_s"] =
      benchmark::Counter(static_cast<double>(committed), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ProposeCommit)
    ->ArgNames({"batch", "value_bytes"})
    ->Args({1, 256})
    ->Args({64, 256})
    ->Args({512, 256});

}  // namespace
}  // namespace ganglion::raft

BENCHMARK_MAIN();
