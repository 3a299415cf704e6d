// Appends to the RocksDB Raft log store with one fsync per Ready (group
// commit), next to this disk's raw fdatasync rate. Run on the disk the data
// directory will live on:
//
//   build/bin/raft_log_store_bench --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true   (one command line)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "raft/log.h"
#include "storage/raft_log_store.h"

namespace ganglion::storage {
namespace {

std::filesystem::path BenchDir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("ganglion-bench-") + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

// The disk's own limit: 4 KiB written and fdatasync'ed, in a loop.
void BM_RawFdatasync(benchmark::State& state) {
  auto dir = BenchDir("fdatasync");
  std::filesystem::create_directories(dir);
  int fd = ::open((dir / "f").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  std::string block(4096, 'x');
  for (auto _ : state) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      state.SkipWithError("write failed");
      break;
    }
    ::fdatasync(fd);
  }
  ::close(fd);
  std::filesystem::remove_all(dir);
  state.counters["fsyncs_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RawFdatasync)->UseRealTime();

// One Save (one synced write batch) of `batch` entries of 256 bytes.
void BM_AppendSynced(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  auto dir = BenchDir("append");
  auto store = *RaftLogStore::Open(dir.string(), RaftLogStoreOptions{});
  raft::Index next = 1;
  std::string value(256, 'v');
  for (auto _ : state) {
    std::vector<raft::Entry> ents;
    ents.reserve(batch);
    for (int i = 0; i < batch; i++) {
      ents.push_back(raft::Entry{1, next++, raft::EntryType::kNormal, value});
    }
    if (!store->Save(raft::HardState{1, 1, next - 1}, ents, std::nullopt).ok()) {
      state.SkipWithError("save failed");
      break;
    }
  }
  state.counters["entries_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * batch), benchmark::Counter::kIsRate);
  state.counters["fsyncs_per_s"] =
      benchmark::Counter(static_cast<double>(store->syncs()), benchmark::Counter::kIsRate);
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AppendSynced)->ArgName("batch")->Arg(1)->Arg(64)->Arg(512)->UseRealTime();

}  // namespace
}  // namespace ganglion::storage

BENCHMARK_MAIN();
