// etcd's error texts and gRPC codes, word for word, so etcd clients (which
// match on them to decide whether to retry) understand ganglion. Storage
// errors already carry the right code; over the wire etcd prefixes mvcc's
// texts with "etcdserver: ".
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace ganglion::server {

inline constexpr char kErrNoLeader[] = "etcdserver: no leader";
inline constexpr char kErrNotLeader[] = "etcdserver: not leader";
inline constexpr char kErrLeaderChanged[] = "etcdserver: leader changed";
inline constexpr char kErrStopped[] = "etcdserver: server stopped";
inline constexpr char kErrTimeout[] = "etcdserver: request timed out";
inline constexpr char kErrTimeoutLeaderTransfer[] =
    "etcdserver: request timed out, leader transfer took too long";
inline constexpr char kErrNoSpace[] = "etcdserver: mvcc: database space exceeded";
inline constexpr char kErrTooManyRequests[] = "etcdserver: too many requests";
inline constexpr char kErrRequestTooLarge[] = "etcdserver: request is too large";
inline constexpr char kErrMemberExist[] = "etcdserver: member ID already exist";
inline constexpr char kErrPeerUrlExist[] = "etcdserver: Peer URLs already exists";
inline constexpr char kErrMemberNotEnoughStarted[] =
    "etcdserver: re-configuration failed due to not enough started members";
inline constexpr char kErrMemberBadUrls[] = "etcdserver: given member URLs are invalid";
inline constexpr char kErrMemberNotFound[] = "etcdserver: member not found";
inline constexpr char kErrMemberNotLearner[] = "etcdserver: can only promote a learner member";
inline constexpr char kErrLearnerNotReady[] =
    "etcdserver: can only promote a learner member which is in sync with leader";
inline constexpr char kErrTooManyLearners[] = "etcdserver: too many learner members in cluster";
inline constexpr char kErrBadLeaderTransferee[] = "etcdserver: bad leader transferee";
inline constexpr char kErrNotSupportedForLearner[] = "etcdserver: rpc not supported for learner";
inline constexpr char kErrMemberRemoved[] =
    "the member has been permanently removed from the cluster";

inline absl::Status NoLeader() {
  return absl::UnavailableError(kErrNoLeader);
}
inline absl::Status LeaderChanged() {
  return absl::UnavailableError(kErrLeaderChanged);
}
inline absl::Status Stopped() {
  return absl::UnavailableError(kErrStopped);
}
inline absl::Status TimedOut() {
  return absl::UnavailableError(kErrTimeout);
}
inline absl::Status NoSpace() {
  return absl::ResourceExhaustedError(kErrNoSpace);
}

// absl and gRPC share the canonical code numbering.
inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string message(s.message());
  if (message.rfind("mvcc: ", 0) == 0) message = "etcdserver: " + message;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), message);
}

}  // namespace ganglion::server
