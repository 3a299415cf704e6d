#include "client/client.h"

namespace ganglion::client {

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientConfig& config) {
  absl::StatusOr<std::shared_ptr<EndpointSet>> endpoints = EndpointSet::Create(config);
  if (!endpoints.ok()) return endpoints.status();
  return std::unique_ptr<Client>(new Client(*std::move(endpoints)));
}

Client::Client(std::shared_ptr<EndpointSet> endpoints)
    : endpoints_(endpoints),
      kv_(endpoints),
      lease_(endpoints),
      watch_(endpoints),
      cluster_(endpoints),
      maintenance_(endpoints) {}

Client::~Client() {
  // The last reference to a channel must not be dropped on a gRPC thread.
  endpoints_->inflight()->WaitIdle();
}

}  // namespace ganglion::client
