// Prints every change under a prefix, resuming across member failures, until
// --count events were printed (0: forever).
//   ganglion-watch-example --endpoints=127.0.0.1:2379,127.0.0.1:22379 --prefix=/demo/
#include <cstdio>
#include <string>

#include "client/client.h"
#include "client/examples/flags.h"

int main(int argc, char** argv) {
  using namespace ganglion::client;
  const auto flags = examples::ParseFlags(argc, argv);
  const std::string prefix = examples::Flag(flags, "prefix", "/demo/");
  const long count = std::stol(examples::Flag(flags, "count", "0"));
  auto client = Client::Create(examples::ConfigFromFlags(flags));
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return 1;
  }
  WatchOptions options;
  options.prefix = true;
  options.prev_kv = true;
  auto watcher = (*client)->watch().Watch(prefix, options);
  if (!watcher.ok()) {
    std::fprintf(stderr, "watch: %s\n", watcher.status().ToString().c_str());
    return 1;
  }
  std::printf("watching %s\n", prefix.c_str());
  std::fflush(stdout);
  long printed = 0;
  while (count == 0 || printed < count) {
    absl::StatusOr<WatchBatch> batch = (*watcher)->Next(absl::Seconds(1));
    if (absl::IsDeadlineExceeded(batch.status())) continue;
    if (IsCompacted(batch.status())) {
      // A real consumer would list the prefix again here (see Informer).
      std::fprintf(stderr, "compacted at %ld; relist needed\n",
                   static_cast<long>(CompactRevision(batch.status())));
      return 2;
    }
    if (!batch.ok()) {
      std::fprintf(stderr, "watch: %s\n", batch.status().ToString().c_str());
      return 1;
    }
    for (const mvccpb::Event& e : batch->events) {
      const bool put = e.type() == mvccpb::Event::PUT;
      std::printf("%ld %s %s %s\n", static_cast<long>(e.kv().mod_revision()),
                  put ? "PUT" : "DELETE", e.kv().key().c_str(), put ? e.kv().value().c_str() : "");
      ++printed;
    }
    std::fflush(stdout);
  }
  return 0;
}
