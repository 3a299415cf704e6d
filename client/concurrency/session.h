// A Session is a lease kept alive for as long as the session lives: the
// liveness that locks and elections hang their keys on. When the session is
// lost (its lease expired or was revoked), every key it owns is gone and
// whoever held a lock through it must stop acting on it. It must never claim
// to be alive after its lease may have expired.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "client/client.h"

namespace ganglion::client {

struct SessionOptions {
  int64_t ttl_s = 60;
  int64_t lease_id = 0;  // 0: grant a new lease; else keep this existing one alive
  // Runs once, on the keep-alive thread, when the session is lost.
  std::function<void(absl::Status)> on_lost;
};

class Session {
 public:
  static absl::StatusOr<std::unique_ptr<Session>> Create(Client& client,
                                                         SessionOptions options = {});
  // Stops the keep-alive and revokes the lease (best effort), so the
  // session's keys disappear at once rather than at TTL.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int64_t lease_id() const { return lease_id_; }
  bool lost() const { return lost_->load(); }
  Client& client() { return client_; }
  // Revokes the lease now.
  absl::Status Close();

 private:
  Session(Client& client, int64_t lease_id, std::shared_ptr<std::atomic<bool>> lost)
      : client_(client), lease_id_(lease_id), lost_(std::move(lost)) {}

  Client& client_;
  const int64_t lease_id_;
  std::shared_ptr<std::atomic<bool>> lost_;
  std::unique_ptr<KeepAliveHandle> keep_alive_;
  bool closed_ = false;
};

}  // namespace ganglion::client
