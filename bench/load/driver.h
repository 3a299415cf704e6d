// The asynchronous load driver: many logical clients, each with one call in
// flight at a time, driven by a few completion-queue threads (never a thread
// per client), closed-loop or paced to a target rate. It measures each call
// from its start to its completion, by kind of call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/load/latency.h"

namespace ganglion::bench {

// One logical client's calls. The driver calls Start for each call and Step
// for each completion of its tag until Step says the call is finished; a
// call may take several asynchronous steps (a stream's write, then read).
class Op {
 public:
  virtual ~Op() = default;
  // Begins the next call; every asynchronous step completes with `tag` on `cq`.
  virtual void Start(grpc::CompletionQueue* cq, void* tag) = 0;
  // One completion; true once the call is over (then status() and kind()
  // describe it).
  virtual bool Step(bool ok) = 0;
  virtual const grpc::Status& status() const = 0;
  // The kind of the call that just finished ("put", "range", ...).
  virtual const std::string& kind() const = 0;
  // Ends anything long-lived (streams) before the driver drains its queues.
  virtual void Cancel() {}
};

struct DriverOptions {
  int threads = 2;                            // completion-queue threads
  double rate_per_second = 0;                 // total, over all clients; 0: as fast as they go
  std::chrono::milliseconds duration{0};      // 0: until total_ops
  uint64_t total_ops = 0;                     // 0: until duration
  std::chrono::seconds progress_interval{5};  // a line on stderr; 0: none
  std::string progress_label;
};

struct DriverReport {
  std::map<std::string, OpStats> by_kind;
  double elapsed_seconds = 0;
  uint64_t total() const;
};

// Runs `clients` until the duration passes or total_ops calls have been
// started, waits for the calls in flight, and reports. Consumes the clients.
DriverReport RunLoad(std::vector<std::unique_ptr<Op>>& clients, const DriverOptions& options);

// One channel per connection: distinct channel arguments keep gRPC from
// sharing a connection between them.
std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::vector<std::string>& endpoints,
                                                         int connections);

int64_t MonotonicNowNs();

}  // namespace ganglion::bench
