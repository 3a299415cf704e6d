// The Ganglion (and etcd v3) client: one object per application, shared by
// its threads. It owns one gRPC channel per member, one watch stream and one
// keep-alive stream, and hands out the call groups below. It must never hide
// an ambiguous write: a Put that may or may not have been applied fails with
// the server's (or gRPC's) error instead of being silently re-sent.
//
//   ganglion::client::ClientConfig config;
//   config.endpoints = {"127.0.0.1:2379", "127.0.0.1:22379"};
//   auto client = ganglion::client::Client::Create(config);
//   (*client)->kv().Put("greeting", "hello");
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "client/cluster.h"
#include "client/config.h"
#include "client/endpoints.h"
#include "client/kv.h"
#include "client/lease.h"
#include "client/ops.h"
#include "client/watch.h"

namespace ganglion::client {

class Client {
 public:
  // Validates the config and creates the channels; dials nothing yet.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientConfig& config);
  // Waits for calls in flight to finish, then stops the watch and keep-alive
  // threads. Never destroy a Client from one of its own callbacks.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  KvClient& kv() { return kv_; }
  LeaseClient& lease() { return lease_; }
  WatchClient& watch() { return watch_; }
  ClusterClient& cluster() { return cluster_; }
  MaintenanceClient& maintenance() { return maintenance_; }
  const ClientConfig& config() const { return endpoints_->config(); }
  EndpointSet& endpoints() { return *endpoints_; }

 private:
  explicit Client(std::shared_ptr<EndpointSet> endpoints);

  std::shared_ptr<EndpointSet> endpoints_;
  KvClient kv_;
  LeaseClient lease_;
  WatchClient watch_;
  ClusterClient cluster_;
  MaintenanceClient maintenance_;
};

}  // namespace ganglion::client
