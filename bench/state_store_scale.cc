// The state store at scale, one run, figures on stdout:
//  1. load N keys (256-byte values) in apply batches: puts/s;
//  2. disk size and RSS with N keys;
//  3. close and reopen: time to open and serve the first Range;
//  4. overwrite every key once (N superseded versions), compact at that
//     revision, and keep applying puts at a steady 16,000 puts/s (one batch
//     of 16 per millisecond) while the background removal runs: latency of
//     each apply batch before and during the compaction.
//
//   build/bin/state_store_scale [--keys=1000000] [--dir=/tmp/...]
// A plain program rather than a Google Benchmark: the phases depend on each
// other and each is measured once per run; run it several times for medians.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "storage/state_store.h"

namespace ganglion::storage {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

uint64_t RssBytes(const char* field) {  // "VmRSS:" or "VmHWM:"
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(std::strlen(field))) * 1024;
  }
  return 0;
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key%010lu", static_cast<unsigned long>(i));
  return buf;
}

struct Loader {
  StateStore* store;
  raft::Index index = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ULL;

  // Incompressible values, so disk figures are not flattered by compression.
  std::string Value() {
    std::string v(256, '\0');
    for (size_t i = 0; i < v.size(); i += 8) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      std::memcpy(&v[i], &rng, 8);
    }
    return v;
  }

  // Applies puts of keys [from, to) in batches; returns each batch's latency (us).
  std::vector<double> Put(uint64_t from, uint64_t to, uint64_t batch) {
    std::vector<double> latencies;
    for (uint64_t i = from; i < to; i += batch) {
      std::vector<ApplyOp> ops;
      for (uint64_t k = i; k < std::min(to, i + batch); k++) {
        etcdserverpb::PutRequest p;
        p.set_key(Key(k));
        p.set_value(Value());
        ops.push_back(ApplyOp{std::move(p), ++index});
      }
      auto start = Clock::now();
      auto res = store->Apply(ops, index);
      latencies.push_back(Seconds(start) * 1e6);
      if (!res.ok()) {
        std::fprintf(stderr, "apply: %s\n", res.status().ToString().c_str());
        std::exit(1);
      }
    }
    return latencies;
  }
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int Run(uint64_t keys, const std::string& dir) {
  std::filesystem::remove_all(dir);
  const uint64_t batch = 256;
  std::printf("state_store_scale keys=%lu value_bytes=256 batch=%lu dir=%s\n",
              static_cast<unsigned long>(keys), static_cast<unsigned long>(batch), dir.c_str());

  auto store = *StateStore::Open(dir, StateStoreOptions{});
  Loader load{store.get()};
  auto start = Clock::now();
  load.Put(0, keys, batch);
  double load_s = Seconds(start);
  std::printf("load: %.0f puts/s (%.1f s)\n", static_cast<double>(keys) / load_s, load_s);
  std::printf("rss_with_keys: %.1f MiB (peak %.1f MiB)\n", RssBytes("VmRSS:") / 1048576.0,
              RssBytes("VmHWM:") / 1048576.0);
  raft::Index applied = load.index;
  store.reset();  // closes (memtables stay in the WAL)
  std::printf("disk_with_keys: %.1f MiB\n", DirBytes(dir) / 1048576.0);

  start = Clock::now();
  store = *StateStore::Open(dir, StateStoreOptions{});
  double open_s = Seconds(start);
  etcdserverpb::RangeRequest r;
  r.set_key(Key(keys / 2));
  auto got = store->Range(r);
  double serve_s = Seconds(start);
  if (!got.ok() || got->kvs_size() != 1 || store->applied_index() != applied) {
    std::fprintf(stderr, "reopen: wrong state\n");
    return 1;
  }
  std::printf("reopen: open %.3f s, first range served %.3f s after open began\n", open_s, serve_s);

  // N superseded versions, then compaction under continued puts.
  load.store = store.get();
  load.Put(0, keys, batch);
  int64_t compact_at = store->current_revision();
  // A steady client load: one batch of 16 puts per millisecond.
  auto paced = [&](uint64_t* next, auto keep_going) {
    std::vector<double> latencies;
    auto tick = Clock::now();
    while (keep_going()) {
      auto l = load.Put(*next % keys, *next % keys + 16, 16);
      latencies.insert(latencies.end(), l.begin(), l.end());
      *next += 16;
      tick += std::chrono::milliseconds(1);
      std::this_thread::sleep_until(tick);
    }
    return latencies;
  };
  uint64_t next = 0;
  auto before_start = Clock::now();
  std::vector<double> before = paced(&next, [&] { return Seconds(before_start) < 5; });
  etcdserverpb::CompactionRequest c;
  c.set_revision(compact_at);
  raft::Index compact_index = ++load.index;
  if (auto res = store->Apply({ApplyOp{c, compact_index}}, compact_index);
      !res.ok() || !(*res)[0].ok()) {
    std::fprintf(stderr, "compact failed\n");
    return 1;
  }
  start = Clock::now();
  std::vector<double> during =
      paced(&next, [&] { return store->physically_compacted_revision() < compact_at; });
  double compact_s = Seconds(start);
  std::printf("compaction of %lu superseded versions: %.1f s while %zu puts were applied\n",
              static_cast<unsigned long>(keys), compact_s, during.size() * 16);
  std::printf(
      "apply latency, batch of 16 puts: before p50 %.0f us p99 %.0f us; "
      "during compaction p50 %.0f us p99 %.0f us max %.0f us\n",
      Percentile(before, 0.5), Percentile(before, 0.99), Percentile(during, 0.5),
      Percentile(during, 0.99), Percentile(during, 1.0));
  store.reset();
  std::printf("disk_after_removal: %.1f MiB (RocksDB reclaims the space in its own compactions)\n",
              DirBytes(dir) / 1048576.0);
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace ganglion::storage

int main(int argc, char** argv) {
  uint64_t keys = 1000000;
  std::string dir =
      (std::filesystem::temp_directory_path() / ("ganglion-scale-" + std::to_string(::getpid())))
          .string();
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--keys=", 0) == 0) {
      keys = std::stoull(a.substr(7));
    } else if (a.rfind("--dir=", 0) == 0) {
      dir = a.substr(6);
    } else {
      std::fprintf(stderr, "usage: state_store_scale [--keys=N] [--dir=PATH]\n");
      return 2;
    }
  }
  return ganglion::storage::Run(keys, dir);
}
