// Conversions between raft:: value types and their peer.proto forms. Lossless
// both ways for every field; decoding rejects enum values this build does not
// know (a newer peer), so nothing is silently reinterpreted.
#pragma once

#include "absl/status/statusor.h"
#include "raft/types.h"
#include "server/peer.pb.h"

namespace ganglion::server {

void ToProto(const raft::Entry& in, peer::Entry* out);
void ToProto(const raft::HardState& in, peer::HardState* out);
void ToProto(const raft::ConfState& in, peer::ConfState* out);
void ToProto(const raft::Snapshot& in, peer::Snapshot* out);
void ToProto(const raft::Message& in, peer::Message* out);

absl::StatusOr<raft::Entry> FromProto(const peer::Entry& in);
raft::HardState FromProto(const peer::HardState& in);
raft::ConfState FromProto(const peer::ConfState& in);
raft::Snapshot FromProto(const peer::Snapshot& in);
absl::StatusOr<raft::Message> FromProto(const peer::Message& in);

}  // namespace ganglion::server
