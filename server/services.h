// The etcd v3 gRPC services (KV, Cluster, Lease, Lock, Election,
// Maintenance) over one Server, on gRPC's callback API: no request holds a
// thread while it waits for Raft. Watch has its own (watch_service.h).
// They translate between etcd's messages and the Server's operations and
// nothing else: every decision about the data is the Server's.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/server.h"

namespace ganglion::server {

std::vector<std::unique_ptr<grpc::Service>> MakeEtcdServices(Server* server);

// etcd's "hasleader" request metadata: when a client sets it to "true", a
// member without a leader refuses at once with "etcdserver: no leader".
bool RequiresLeader(const grpc::ServerContextBase* ctx);
absl::Status CheckRequireLeader(const grpc::ServerContextBase* ctx, const Server& server);

}  // namespace ganglion::server
