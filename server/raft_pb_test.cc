#include "server/raft_pb.h"

#include <gtest/gtest.h>

namespace ganglion::server {
namespace {

using raft::Message;
using raft::MessageType;

// A message with every field set to a distinct non-default value.
Message FullMessage(MessageType type) {
  Message m;
  m.type = type;
  m.to = 2;
  m.from = 0xfedcba9876543210ull;
  m.term = 7;
  m.log_term = 6;
  m.index = UINT64_MAX;
  m.entries = {raft::Entry{5, 10, raft::EntryType::kNormal, "a"},
               raft::Entry{6, 11, raft::EntryType::kConfChange, std::string("b\0c", 3)},
               raft::Entry{6, 12, raft::EntryType::kNormal, ""}};
  m.commit = 9;
  raft::Snapshot snap;
  snap.data = std::string(1000, '\xff');
  snap.metadata.index = 8;
  snap.metadata.term = 4;
  snap.metadata.conf_state = raft::ConfState{{1, 2, 3}, {4}, {1, 2, 5}, {5}, true};
  m.snapshot = snap;
  m.reject = true;
  m.reject_hint = 3;
  m.commit_only = true;
  m.context = std::string("ctx\0x", 5);
  return m;
}

Message RoundTrip(const Message& m) {
  peer::Message pb;
  ToProto(m, &pb);
  // Through the bytes too, not only the in-memory proto.
  std::string wire = pb.SerializeAsString();
  peer::Message parsed;
  EXPECT_TRUE(parsed.ParseFromString(wire));
  auto back = FromProto(parsed);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : Message{};
}

TEST(RaftPbTest, EveryMessageTypeWithEveryFieldRoundTrips) {
  for (int t = 0; t <= static_cast<int>(MessageType::kReadIndexResp); t++) {
    Message m = FullMessage(static_cast<MessageType>(t));
    EXPECT_EQ(RoundTrip(m), m) << raft::Describe(m);
  }
}

TEST(RaftPbTest, DefaultMessageRoundTripsAndAbsentSnapshotStaysAbsent) {
  Message m;
  Message back = RoundTrip(m);
  EXPECT_EQ(back, m);
  EXPECT_FALSE(back.snapshot.has_value());
  // An empty snapshot that is present stays present.
  m.snapshot = raft::Snapshot{};
  back = RoundTrip(m);
  EXPECT_TRUE(back.snapshot.has_value());
  EXPECT_EQ(back, m);
}

TEST(RaftPbTest, EachFieldAloneSurvives) {
  // Catches two fields swapped in the mapping, which a full message with
  // equal values could hide.
  Message base;
  std::vector<Message> variants;
  for (int i = 0; i < 11; i++) variants.push_back(base);
  variants[0].to = 11;
  variants[1].from = 12;
  variants[2].term = 13;
  variants[3].log_term = 14;
  variants[4].index = 15;
  variants[5].commit = 16;
  variants[6].reject = true;
  variants[7].reject_hint = 17;
  variants[8].context = "c";
  variants[9].entries = {raft::Entry{1, 2, raft::EntryType::kConfChange, "d"}};
  variants[10].commit_only = true;
  for (const Message& m : variants) EXPECT_EQ(RoundTrip(m), m) << raft::Describe(m);
}

TEST(RaftPbTest, HardStateAndConfStateRoundTrip) {
  raft::HardState hs{3, 2, 1};
  peer::HardState hs_pb;
  ToProto(hs, &hs_pb);
  EXPECT_EQ(FromProto(hs_pb), hs);

  raft::ConfState cs{{1, 2}, {3}, {1, 4}, {4}, true};
  peer::ConfState cs_pb;
  ToProto(cs, &cs_pb);
  EXPECT_EQ(FromProto(cs_pb), cs);
  raft::ConfState swapped{{3}, {1, 2}, {4}, {1, 4}, false};
  EXPECT_NE(FromProto(cs_pb), swapped);
}

TEST(RaftPbTest, UnknownEnumValuesAreRejected) {
  peer::Message pb;
  pb.set_type(static_cast<peer::MessageType>(99));
  EXPECT_FALSE(FromProto(pb).ok());
  peer::Message with_entry;
  with_entry.add_entries()->set_type(static_cast<peer::EntryType>(7));
  EXPECT_FALSE(FromProto(with_entry).ok());
}

}  // namespace
}  // namespace ganglion::server
