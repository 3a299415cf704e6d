// Watch fan-out load: `streams` Watch streams of `watchers_per_stream`
// watchers each (watcher m of stream s watches key (s * watchers + m) mod
// keys), driven from a few completion-queue threads, while open-loop writers
// put the keys at a fixed total rate with the send time in the value.
// Measures delivery latency (put sent -> event read) and checks that every
// event of every successful put reached every watcher of its key.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/load/driver.h"
#include "bench/load/latency.h"

namespace ganglion::bench {

struct WatchLoadOptions {
  std::vector<std::string> watch_endpoints;  // streams spread over them
  std::vector<std::string> put_endpoints;
  int streams = 10;
  int watchers_per_stream = 100;
  int keys = 0;         // 0: watchers_per_stream
  int connections = 0;  // for the streams; 0: one per stream
  int client_threads = 2;
  double rate = 1000;  // puts per second, total
  int writers = 8;
  std::chrono::seconds duration{10};
  // Called once every watcher is created, before the first put (to measure
  // the idle cost of the watchers).
  std::function<void()> on_watching;
};

struct WatchLoadReport {
  LatencyHistogram delivery;  // per event
  DriverReport puts;
  uint64_t delivered = 0;
  uint64_t expected = 0;
};

absl::StatusOr<WatchLoadReport> RunWatchLoad(const WatchLoadOptions& options);

}  // namespace ganglion::bench
