// The orchestrator's HTTP API server: Kubernetes-shaped REST over HTTP/1.1 on
// Boost.Beast, inside the `ganglion` process. A small fixed pool of I/O
// threads runs every connection asynchronously (a watch is a chunked
// response fed by the store's shared watch: no thread per watch), and a small
// fixed pool of workers runs the blocking handler (store calls). It must
// never let one client grow memory without bound: request headers and bodies,
// a watch's queue of unsent events and the number of requests in flight are
// all capped.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/storage/object_store.h"

namespace ganglion::orchestrator {

struct ApiServerOptions {
  std::vector<std::string> listen_addresses;  // "host:port"; port 0 picks one
  std::vector<std::string> store_endpoints;   // the member's client address(es)
  int io_threads = 2;
  int worker_threads = 4;
  // Requests being handled or queued for a worker; beyond it: 429.
  int requests_in_flight_max = 512;
  // Watch requests waiting for a worker to start their stream; beyond it: 429.
  int watch_starts_queued_max = 4096;
  size_t request_body_bytes_max = 3 * 1024 * 1024;  // Kubernetes' own limit
  // Serialized events waiting to be written to one watch's socket; a client
  // that falls this far behind is disconnected (it re-lists and re-watches).
  size_t watch_queued_bytes_max = 16 * 1024 * 1024;
  // A watch with allowWatchBookmarks=true gets a BOOKMARK this often.
  std::chrono::milliseconds watch_bookmark_interval{10000};
};

class ApiServer {
 public:
  // Binds the listeners and starts the threads; the store connects in the
  // background, so this never waits for the member to have a leader.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(ApiServerOptions options);
  // Starts over a store the caller owns (tests, in-process store).
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(ApiServerOptions options,
                                                          ObjectStore* store);
  virtual ~ApiServer() = default;
  virtual void Stop() = 0;
  // The bound addresses ("127.0.0.1:port"), in listen_addresses order.
  virtual std::vector<std::string> addresses() const = 0;
};

}  // namespace ganglion::orchestrator
