// Increments a counter under a lock, --times times. Each write carries the
// lock's fencing token (its key's create revision) as a transaction guard, so
// a holder whose session expired cannot overwrite its successor's work. Run
// several at once: the final count is exact.
//   ganglion-lock-example --lock=/demo/lock --counter=/demo/counter --times=5
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/concurrency/mutex.h"
#include "client/examples/flags.h"

int main(int argc, char** argv) {
  using namespace ganglion::client;
  const auto flags = examples::ParseFlags(argc, argv);
  const std::string lock_prefix = examples::Flag(flags, "lock", "/demo/lock");
  const std::string counter = examples::Flag(flags, "counter", "/demo/counter");
  const int times = std::stoi(examples::Flag(flags, "times", "5"));
  auto client = Client::Create(examples::ConfigFromFlags(flags));
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return 1;
  }
  SessionOptions session_options;
  session_options.ttl_s = 10;
  auto session = Session::Create(**client, session_options);
  if (!session.ok()) {
    std::fprintf(stderr, "session: %s\n", session.status().ToString().c_str());
    return 1;
  }
  for (int i = 0; i < times; ++i) {
    Mutex mutex(**session, lock_prefix);
    if (absl::Status s = mutex.Lock(absl::Seconds(30)); !s.ok()) {
      std::fprintf(stderr, "lock: %s\n", s.ToString().c_str());
      return 1;
    }
    auto current = (*client)->kv().Get(counter);
    if (!current.ok()) {
      std::fprintf(stderr, "get: %s\n", current.status().ToString().c_str());
      return 1;
    }
    const long n = current->kvs().empty() ? 0 : std::stol(current->kvs(0).value());
    // Written only while our lock key still has the create revision we got.
    Txn guarded;
    guarded.If(mutex.IsOwner()).Then(Op::Put(counter, absl::StrCat(n + 1)));
    auto written = (*client)->kv().Commit(guarded);
    if (!written.ok() || !written->succeeded()) {
      std::fprintf(stderr, "fenced out: the lock was lost before the write\n");
      return 1;
    }
    std::printf("token %ld: %s = %ld\n", static_cast<long>(mutex.fencing_token()), counter.c_str(),
                n + 1);
    std::fflush(stdout);
    if (absl::Status s = mutex.Unlock(); !s.ok()) {
      std::fprintf(stderr, "unlock: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
