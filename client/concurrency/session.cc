#include "client/concurrency/session.h"

namespace ganglion::client {

absl::StatusOr<std::unique_ptr<Session>> Session::Create(Client& client, SessionOptions options) {
  int64_t id = options.lease_id;
  if (id == 0) {
    absl::StatusOr<etcdserverpb::LeaseGrantResponse> granted = client.lease().Grant(options.ttl_s);
    if (!granted.ok()) return granted.status();
    id = granted->id();
  }
  auto lost = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<Session> session(new Session(client, id, lost));
  absl::StatusOr<std::unique_ptr<KeepAliveHandle>> handle =
      client.lease().KeepAlive(id, [lost, on_lost = std::move(options.on_lost)](absl::Status why) {
        lost->store(true);
        if (on_lost) on_lost(std::move(why));
      });
  if (!handle.ok()) {
    if (options.lease_id == 0) (void)client.lease().Revoke(id);
    session->closed_ = true;
    return handle.status();
  }
  session->keep_alive_ = *std::move(handle);
  return session;
}

Session::~Session() {
  (void)Close();
}

absl::Status Session::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  keep_alive_.reset();
  absl::StatusOr<etcdserverpb::LeaseRevokeResponse> revoked = client_.lease().Revoke(lease_id_);
  if (!revoked.ok() && revoked.status().code() != absl::StatusCode::kNotFound) {
    return revoked.status();
  }
  return absl::OkStatus();
}

}  // namespace ganglion::client
