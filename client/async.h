// How an asynchronous call hands back its result: a callback run on one of
// gRPC's threads, or a std::future made from it. A callback must never block
// (in particular, never wait for another call of the same Client): it runs on
// the threads that complete every other call.
#pragma once

#include <functional>
#include <future>
#include <memory>

#include "absl/status/statusor.h"

namespace ganglion::client {

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;

template <typename T>
using Future = std::future<absl::StatusOr<T>>;

// A callback that fulfils the returned future.
template <typename T>
std::pair<Callback<T>, Future<T>> MakeFutureCallback() {
  auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
  Future<T> future = promise->get_future();
  return {[promise](absl::StatusOr<T> result) { promise->set_value(std::move(result)); },
          std::move(future)};
}

}  // namespace ganglion::client
