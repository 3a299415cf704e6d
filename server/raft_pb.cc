#include "server/raft_pb.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ganglion::server {
namespace {

constexpr int kLastMessageType = static_cast<int>(raft::MessageType::kReadIndexResp);
static_assert(peer::MessageType_MAX == kLastMessageType, "peer.proto and raft::MessageType differ");
static_assert(static_cast<int>(raft::MessageType::kSnap) == peer::MSG_SNAP);
static_assert(static_cast<int>(raft::MessageType::kHeartbeat) == peer::MSG_HEARTBEAT);
static_assert(peer::EntryType_MAX == static_cast<int>(raft::EntryType::kConfChange));

template <typename Repeated>
std::vector<raft::NodeId> Ids(const Repeated& r) {
  return std::vector<raft::NodeId>(r.begin(), r.end());
}

}  // namespace

void ToProto(const raft::Entry& in, peer::Entry* out) {
  out->set_term(in.term);
  out->set_index(in.index);
  out->set_type(static_cast<peer::EntryType>(in.type));
  out->set_data(in.data);
}

void ToProto(const raft::HardState& in, peer::HardState* out) {
  out->set_term(in.term);
  out->set_vote(in.vote);
  out->set_commit(in.commit);
}

void ToProto(const raft::ConfState& in, peer::ConfState* out) {
  out->mutable_voters()->Add(in.voters.begin(), in.voters.end());
  out->mutable_learners()->Add(in.learners.begin(), in.learners.end());
  out->mutable_voters_outgoing()->Add(in.voters_outgoing.begin(), in.voters_outgoing.end());
  out->mutable_learners_next()->Add(in.learners_next.begin(), in.learners_next.end());
  out->set_auto_leave(in.auto_leave);
}

void ToProto(const raft::Snapshot& in, peer::Snapshot* out) {
  out->set_data(in.data);
  peer::SnapshotMetadata* md = out->mutable_metadata();
  ToProto(in.metadata.conf_state, md->mutable_conf_state());
  md->set_index(in.metadata.index);
  md->set_term(in.metadata.term);
}

void ToProto(const raft::Message& in, peer::Message* out) {
  out->set_type(static_cast<peer::MessageType>(in.type));
  out->set_to(in.to);
  out->set_from(in.from);
  out->set_term(in.term);
  out->set_log_term(in.log_term);
  out->set_index(in.index);
  out->mutable_entries()->Reserve(static_cast<int>(in.entries.size()));
  for (const raft::Entry& e : in.entries) ToProto(e, out->add_entries());
  out->set_commit(in.commit);
  if (in.snapshot) ToProto(*in.snapshot, out->mutable_snapshot());
  out->set_reject(in.reject);
  out->set_reject_hint(in.reject_hint);
  out->set_context(in.context);
  out->set_commit_only(in.commit_only);
}

absl::StatusOr<raft::Entry> FromProto(const peer::Entry& in) {
  if (in.type() < 0 || in.type() > peer::EntryType_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("unknown entry type ", in.type()));
  }
  return raft::Entry{in.term(), in.index(), static_cast<raft::EntryType>(in.type()), in.data()};
}

raft::HardState FromProto(const peer::HardState& in) {
  return raft::HardState{in.term(), in.vote(), in.commit()};
}

raft::ConfState FromProto(const peer::ConfState& in) {
  return raft::ConfState{Ids(in.voters()), Ids(in.learners()), Ids(in.voters_outgoing()),
                         Ids(in.learners_next()), in.auto_leave()};
}

raft::Snapshot FromProto(const peer::Snapshot& in) {
  raft::Snapshot out;
  out.data = in.data();
  out.metadata.conf_state = FromProto(in.metadata().conf_state());
  out.metadata.index = in.metadata().index();
  out.metadata.term = in.metadata().term();
  return out;
}

absl::StatusOr<raft::Message> FromProto(const peer::Message& in) {
  if (in.type() < 0 || in.type() > kLastMessageType) {
    return absl::InvalidArgumentError(absl::StrCat("unknown message type ", in.type()));
  }
  raft::Message out;
  out.type = static_cast<raft::MessageType>(in.type());
  out.to = in.to();
  out.from = in.from();
  out.term = in.term();
  out.log_term = in.log_term();
  out.index = in.index();
  out.entries.reserve(in.entries_size());
  for (const peer::Entry& e : in.entries()) {
    auto entry = FromProto(e);
    if (!entry.ok()) return entry.status();
    out.entries.push_back(*std::move(entry));
  }
  out.commit = in.commit();
  if (in.has_snapshot()) out.snapshot = FromProto(in.snapshot());
  out.reject = in.reject();
  out.reject_hint = in.reject_hint();
  out.context = in.context();
  out.commit_only = in.commit_only();
  return out;
}

}  // namespace ganglion::server
