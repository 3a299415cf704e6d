#include "server/transport.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "server/peer.grpc.pb.h"
#include "server/raft_pb.h"

namespace ganglion::server {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using raft::Message;
using raft::MessageType;
using raft::NodeId;

constexpr uint64_t kClusterId = 0xc1;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("ganglion-transport-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// A port nothing listens on (bound, then released).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Polls `done` (which takes its own locks) until it holds or time runs out.
bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

std::string Url(int port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

// What one member's transport delivered, with waits bounded by a deadline.
class Inbox {
 public:
  void Add(std::vector<Message> ms) {
    std::lock_guard<std::mutex> l(mu_);
    for (Message& m : ms) messages_.push_back(std::move(m));
    cv_.notify_all();
  }
  void AddSnapshot(Message m, std::string dir) {
    std::lock_guard<std::mutex> l(mu_);
    snapshots_.emplace_back(std::move(m), std::move(dir));
    cv_.notify_all();
  }
  void AddUnreachable(NodeId id) {
    std::lock_guard<std::mutex> l(mu_);
    unreachable_.push_back(id);
    cv_.notify_all();
  }
  template <typename Pred>
  bool WaitFor(Pred pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return pred(); });
  }
  std::vector<Message> From(NodeId from) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<Message> out;
    for (const Message& m : messages_) {
      if (m.from == from) out.push_back(m);
    }
    return out;
  }
  size_t CountFrom(NodeId from) { return From(from).size(); }  // takes mu_
  // Unlocked accessors for WaitFor predicates (which run under mu_).
  size_t CountFromLocked(NodeId from) const {
    return std::count_if(messages_.begin(), messages_.end(),
                         [&](const Message& m) { return m.from == from; });
  }
  const std::vector<Message>& messages() const { return messages_; }
  const std::vector<std::pair<Message, std::string>>& snapshots() const { return snapshots_; }
  const std::vector<NodeId>& unreachable() const { return unreachable_; }
  size_t UnreachableCount() {
    std::lock_guard<std::mutex> l(mu_);
    return unreachable_.size();
  }
  std::vector<std::pair<Message, std::string>> Snapshots() {
    std::lock_guard<std::mutex> l(mu_);
    return snapshots_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Message> messages_;
  std::vector<std::pair<Message, std::string>> snapshots_;
  std::vector<NodeId> unreachable_;
};

struct Member {
  Member(NodeId id, int port = 0, uint64_t cluster_id = kClusterId) : id(id) {
    TransportOptions o;
    o.self_id = id;
    o.cluster_id = cluster_id;
    o.listen_addr = "127.0.0.1:" + std::to_string(port);
    o.snapshot_dir = (fs::path(dir.path()) / "snap").string();
    o.on_messages = [this](std::vector<Message> ms) { inbox.Add(std::move(ms)); };
    o.on_snapshot = [this](Message m, std::string d) { inbox.AddSnapshot(std::move(m), d); };
    o.on_unreachable = [this](NodeId peer) { inbox.AddUnreachable(peer); };
    transport = std::make_unique<Transport>(o);
  }
  void Start() { ASSERT_TRUE(transport->Start().ok()); }
  std::string snapshot_dir() const { return (fs::path(dir.path()) / "snap").string(); }

  NodeId id;
  TempDir dir;
  Inbox inbox;
  std::unique_ptr<Transport> transport;
};

Message App(NodeId from, NodeId to, uint64_t seq) {
  Message m;
  m.type = MessageType::kApp;
  m.from = from;
  m.to = to;
  m.term = 3;
  m.index = seq;
  m.entries = {raft::Entry{3, seq + 1, raft::EntryType::kNormal, "payload-" + std::to_string(seq)}};
  m.commit = seq;
  return m;
}

// Each link's messages arrived exactly once, in the order sent.
void ExpectInOrder(const std::vector<Message>& got, NodeId from, NodeId to, uint64_t count) {
  ASSERT_EQ(got.size(), count);
  for (uint64_t i = 0; i < count; i++) {
    ASSERT_EQ(got[i], App(from, to, i)) << "message " << i;
  }
}

TEST(TransportTest, TwoMembersExchangeBatchesInOrder) {
  Member a(1), b(2);
  a.Start();
  b.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b.transport->port())).ok());
  ASSERT_TRUE(b.transport->AddPeer(1, Url(a.transport->port())).ok());
  constexpr uint64_t kCount = 2000;
  std::thread ta([&] {
    for (uint64_t i = 0; i < kCount; i += 20) {
      std::vector<Message> batch;
      for (uint64_t j = i; j < i + 20; j++) batch.push_back(App(1, 2, j));
      a.transport->Send(std::move(batch));
    }
  });
  for (uint64_t i = 0; i < kCount; i++) b.transport->Send({App(2, 1, i)});
  ta.join();
  ASSERT_TRUE(b.inbox.WaitFor([&] { return b.inbox.CountFromLocked(1) >= kCount; }));
  ASSERT_TRUE(a.inbox.WaitFor([&] { return a.inbox.CountFromLocked(2) >= kCount; }));
  ExpectInOrder(b.inbox.From(1), 1, 2, kCount);
  ExpectInOrder(a.inbox.From(2), 2, 1, kCount);
  // The sender counts a batch once its write returned, which may be after
  // the receiver already handed it on.
  for (int i = 0; i < 500 && a.transport->metrics().sent_messages < kCount; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(a.transport->metrics().sent_messages, kCount);
  EXPECT_EQ(a.transport->metrics().dropped_messages, 0u);
  EXPECT_EQ(b.transport->metrics().received_messages, kCount);
}

// The fault-injection rules (ganglion --experimental-fault-injection) cut one
// direction at a time and heal without a reconnect.
TEST(TransportTest, FaultRulesDropOneDirectionUntilCleared) {
  Member a(1), b(2);
  a.Start();
  b.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b.transport->port())).ok());
  ASSERT_TRUE(b.transport->AddPeer(1, Url(a.transport->port())).ok());

  a.transport->SetFaultRules(PeerFaultRules{.drop_to = {2}, .drop_from = {}});
  b.transport->SetFaultRules(PeerFaultRules{.drop_to = {}, .drop_from = {1}});
  EXPECT_EQ(a.transport->fault_rules().drop_to, std::set<NodeId>{2});
  for (uint64_t i = 0; i < 10; i++) a.transport->Send({App(1, 2, i)});
  for (uint64_t i = 0; i < 10; i++) b.transport->Send({App(2, 1, i)});
  ASSERT_TRUE(a.inbox.WaitFor([&] { return a.inbox.CountFromLocked(2) >= 10; }))
      << "b -> a is not cut";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(b.inbox.CountFrom(1), 0u) << "a -> b is cut at the sender";
  EXPECT_EQ(a.transport->metrics().fault_dropped_messages, 10u);

  // Only b drops what comes from a: the frames travel and are discarded.
  a.transport->SetFaultRules({});
  for (uint64_t i = 0; i < 10; i++) a.transport->Send({App(1, 2, i)});
  ASSERT_TRUE(Eventually([&] { return b.transport->metrics().fault_dropped_messages >= 10; }));
  EXPECT_EQ(b.inbox.CountFrom(1), 0u);

  b.transport->SetFaultRules({});
  for (uint64_t i = 0; i < 10; i++) a.transport->Send({App(1, 2, i)});
  ASSERT_TRUE(b.inbox.WaitFor([&] { return b.inbox.CountFromLocked(1) >= 10; })) << "healed";
  ExpectInOrder(b.inbox.From(1), 1, 2, 10);
}

TEST(TransportTest, FaultRulesParseAndFormat) {
  auto r = ParsePeerFaultRules("drop_to=a1,b2&drop_from=c3");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->drop_to, (std::set<NodeId>{0xa1, 0xb2}));
  EXPECT_EQ(r->drop_from, std::set<NodeId>{0xc3});
  EXPECT_EQ(FormatPeerFaultRules(*r), "drop_to=a1,b2&drop_from=c3");
  EXPECT_EQ(ParsePeerFaultRules("drop_to=&drop_from=").value(), PeerFaultRules{});
  EXPECT_EQ(ParsePeerFaultRules("").value(), PeerFaultRules{});
  EXPECT_FALSE(ParsePeerFaultRules("drop=1").ok());
  EXPECT_FALSE(ParsePeerFaultRules("drop_to=xyz").ok());
  EXPECT_FALSE(ParsePeerFaultRules("drop_to=0").ok());
}

TEST(TransportTest, QueuedMessagesGoOutInBatchesWithinTheByteBound) {
  Member b(2);
  b.Start();
  TransportOptions o;
  o.self_id = 1;
  o.cluster_id = kClusterId;
  o.listen_addr = "127.0.0.1:0";
  o.batch_bytes_max = 2000;
  Transport a(o);
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(a.AddPeer(2, Url(b.transport->port())).ok());
  // One Send of 300 messages (~600 bytes each): the sender finds them all
  // queued, so frames carry several messages, but never more than the bound
  // allows (the message that crosses it closes the frame).
  std::vector<Message> many;
  for (uint64_t i = 0; i < 300; i++) {
    Message m = App(1, 2, i);
    m.entries[0].data.resize(500, 'x');
    many.push_back(m);
  }
  const std::vector<Message> sent = many;
  a.Send(std::move(many));
  ASSERT_TRUE(b.inbox.WaitFor([&] { return b.inbox.CountFromLocked(1) >= 300; }));
  EXPECT_EQ(b.inbox.From(1), sent);
  const TransportMetrics m = a.metrics();
  EXPECT_EQ(m.sent_messages, 300u);
  EXPECT_LT(m.sent_frames, 300u / 2);  // batching happened
  EXPECT_GE(m.sent_frames, 300u / 4);  // <= 4 messages of ~600 bytes per 2000-byte frame
}

TEST(TransportTest, ThreeMembersEveryLinkInOrder) {
  std::vector<std::unique_ptr<Member>> ms;
  for (NodeId id = 1; id <= 3; id++) {
    ms.push_back(std::make_unique<Member>(id));
    ms.back()->Start();
  }
  for (auto& from : ms) {
    for (auto& to : ms) {
      if (from != to) {
        ASSERT_TRUE(from->transport->AddPeer(to->id, Url(to->transport->port())).ok());
      }
    }
  }
  constexpr uint64_t kCount = 500;
  for (uint64_t i = 0; i < kCount; i++) {
    for (auto& from : ms) {
      std::vector<Message> out;  // one Send to both peers, as a leader's Ready would
      for (auto& to : ms) {
        if (from != to) out.push_back(App(from->id, to->id, i));
      }
      from->transport->Send(std::move(out));
    }
  }
  for (auto& to : ms) {
    for (auto& from : ms) {
      if (from == to) continue;
      ASSERT_TRUE(to->inbox.WaitFor([&] { return to->inbox.CountFromLocked(from->id) >= kCount; }))
          << from->id << "->" << to->id;
      ExpectInOrder(to->inbox.From(from->id), from->id, to->id, kCount);
    }
  }
}

TEST(TransportTest, LatePeerGetsMessagesAfterReconnect) {
  const int b_port = FreePort();
  Member a(1);
  a.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b_port)).ok());
  // B is down: these are lost (and reported), which Raft tolerates.
  for (uint64_t i = 0; i < 10; i++) a.transport->Send({App(1, 2, 1000 + i)});
  ASSERT_TRUE(a.inbox.WaitFor([&] { return !a.inbox.unreachable().empty(); }));

  Member b(2, b_port);
  b.Start();
  // Probe until the link is back (gRPC and our backoff are both <= 2 s).
  uint64_t probe = 5000;
  ASSERT_TRUE(Eventually([&] {
    a.transport->Send({App(1, 2, probe++)});
    return b.inbox.CountFrom(1) > 0;
  }));
  // Wait for the probes in flight to land, then everything sent now arrives.
  std::this_thread::sleep_for(200ms);
  const size_t before = b.inbox.CountFrom(1);
  constexpr uint64_t kCount = 100;
  for (uint64_t i = 0; i < kCount; i++) a.transport->Send({App(1, 2, i)});
  ASSERT_TRUE(b.inbox.WaitFor([&] { return b.inbox.CountFromLocked(1) >= before + kCount; }));
  std::vector<Message> got = b.inbox.From(1);
  got.erase(got.begin(), got.begin() + static_cast<long>(before));
  ExpectInOrder(got, 1, 2, kCount);
  EXPECT_TRUE(Eventually([&] { return a.transport->metrics().reconnects >= 1; }));
  EXPECT_GE(a.transport->metrics().stream_failures, 1u);
}

TEST(TransportTest, PeerThatDiesIsReportedWithoutTrafficAndRestartIsReached) {
  Member a(1);
  auto b = std::make_unique<Member>(2);
  a.Start();
  b->Start();
  const int b_port = b->transport->port();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b_port)).ok());
  a.transport->Send({App(1, 2, 0)});
  ASSERT_TRUE(b->inbox.WaitFor([&] { return b->inbox.CountFromLocked(1) == 1; }));
  b.reset();  // stops b's server, ending a's idle stream
  ASSERT_TRUE(a.inbox.WaitFor([&] { return !a.inbox.unreachable().empty(); }, 5s));
  EXPECT_EQ(a.transport->metrics().sent_messages, 1u);

  Member b2(2, b_port);  // the same member restarted at the same address
  b2.Start();
  uint64_t seq = 1;
  ASSERT_TRUE(Eventually([&] {
    a.transport->Send({App(1, 2, seq++)});
    return b2.inbox.CountFrom(1) > 0;
  }));
  EXPECT_TRUE(Eventually([&] { return a.transport->metrics().reconnects == 1; }));
}

// Writes start from whichever thread finds the stream idle (Send's caller or
// the last write's completion) while the link thread reopens the stream:
// several threads sending through a peer that dies and comes back never see
// a message twice or out of their order, every message is accounted for
// (written, dropped, or still queued), and the link carries on afterwards.
TEST(TransportTest, ConcurrentSendersAcrossAPeerRestartKeepOrderAndAccount) {
  Member a(1);
  auto b = std::make_unique<Member>(2);
  a.Start();
  b->Start();
  const int b_port = b->transport->port();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b_port)).ok());
  // Thread t sends App(1, 2, t * kStride + i) for i = 0, 1, ... until told
  // to stop; probes come after every thread's range.
  constexpr int kThreads = 4;
  constexpr uint64_t kStride = 1'000'000'000;
  std::atomic<bool> stop{false};
  std::vector<uint64_t> sent_by(kThreads, 0);
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; t++) {
    senders.emplace_back([&, t] {
      uint64_t i = 0;
      for (; !stop; i++) {
        a.transport->Send({App(1, 2, t * kStride + i)});
        if (i % 16 == 0) std::this_thread::sleep_for(200us);
      }
      sent_by[t] = i;
    });
  }
  // The peer dies mid-stream (some writes fail, others are queued behind
  // them) and comes back while the threads still send, several times over.
  constexpr int kRestarts = 5;
  std::vector<Message> got;
  bool resumed = true;
  for (int r = 0; r < kRestarts && resumed; r++) {
    resumed = b->inbox.WaitFor([&] { return b->inbox.CountFromLocked(1) >= 200; });
    b->transport->Stop();
    std::vector<Message> part = b->inbox.From(1);
    got.insert(got.end(), part.begin(), part.end());
    b.reset();
    b = std::make_unique<Member>(2, b_port);
    b->Start();
  }
  if (resumed) resumed = b->inbox.WaitFor([&] { return b->inbox.CountFromLocked(1) >= 200; });
  stop = true;
  for (auto& s : senders) s.join();
  ASSERT_TRUE(resumed) << "the link did not come back";
  // Then probes, sent until one arrives: the queue is drained.
  uint64_t probe = kThreads * kStride;
  ASSERT_TRUE(Eventually([&] {
    a.transport->Send({App(1, 2, probe++)});
    return b->inbox.From(1).back().index >= kThreads * kStride;
  }));
  std::vector<Message> after = b->inbox.From(1);
  got.insert(got.end(), after.begin(), after.end());

  std::vector<int64_t> last(kThreads, -1);
  std::set<uint64_t> seen;
  for (const Message& m : got) {
    ASSERT_TRUE(seen.insert(m.index).second) << "message " << m.index << " delivered twice";
    if (m.index >= kThreads * kStride) continue;  // a probe
    const int t = static_cast<int>(m.index / kStride);
    const auto i = static_cast<int64_t>(m.index % kStride);
    ASSERT_GT(i, last[t]) << "thread " << t << " out of order";
    last[t] = i;
    ASSERT_EQ(m, App(1, 2, m.index));
  }
  EXPECT_GE(a.transport->metrics().stream_failures, static_cast<uint64_t>(kRestarts));
  // Nothing is counted both ways, and nothing vanishes uncounted: every
  // message was written or dropped (the last probe's write may still be
  // completing).
  uint64_t total = probe - kThreads * kStride;
  for (uint64_t n : sent_by) total += n;
  EXPECT_TRUE(Eventually([&] {
    const TransportMetrics m = a.transport->metrics();
    return m.sent_messages + m.dropped_messages == total;
  })) << a.transport->metrics().sent_messages << " sent + "
      << a.transport->metrics().dropped_messages << " dropped != " << total;
  EXPECT_GE(a.transport->metrics().sent_messages, got.size());
}

TEST(TransportTest, DeadPeerIsReportedUnreachable) {
  Member a(1);
  a.Start();
  ASSERT_TRUE(a.transport->AddPeer(7, Url(FreePort())).ok());
  a.transport->Send({App(1, 7, 0)});
  ASSERT_TRUE(a.inbox.WaitFor([&] { return !a.inbox.unreachable().empty(); }, 5s));
  EXPECT_EQ(a.inbox.unreachable()[0], 7u);
  EXPECT_EQ(a.transport->metrics().sent_messages, 0u);
  EXPECT_GE(a.transport->metrics().stream_failures, 1u);
}

TEST(TransportTest, FullQueueDropsAndCounts) {
  TransportOptions o;
  o.self_id = 1;
  o.cluster_id = kClusterId;
  o.listen_addr = "127.0.0.1:0";
  o.queue_messages_max = 8;
  o.reconnect_backoff_min = 1000ms;  // keep the sender away from the queue
  Transport t(o);
  ASSERT_TRUE(t.Start().ok());
  ASSERT_TRUE(t.AddPeer(2, Url(FreePort())).ok());
  std::vector<Message> many;
  for (uint64_t i = 0; i < 100; i++) many.push_back(App(1, 2, i));
  t.Send(std::move(many));
  // At most the queue bound (plus one batch taken by the sender) survives.
  EXPECT_GE(t.metrics().dropped_messages, 100u - 8u);
  t.Send({App(1, 99, 0)});  // unknown peer
  EXPECT_GE(t.metrics().dropped_messages, 100u - 8u + 1u);
}

void WriteFile(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::map<std::string, std::string> ReadDir(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = ReadFile(e.path());
  }
  return out;
}

// A checkpoint-like directory: one file over 3 MiB, small and empty ones.
std::map<std::string, std::string> MakeCheckpoint(const std::string& dir) {
  std::mt19937_64 rng(42);
  std::string big(3 * 1024 * 1024 + 12345, '\0');
  for (char& c : big) c = static_cast<char>(rng());
  std::map<std::string, std::string> files = {{"000012.sst", big},
                                              {"CURRENT", "MANIFEST-000005\n"},
                                              {"MANIFEST-000005", std::string(5000, 'm')},
                                              {"OPTIONS-000007", ""}};
  fs::create_directories(dir);
  for (const auto& [name, data] : files) WriteFile(fs::path(dir) / name, data);
  return files;
}

Message SnapMessage(NodeId from, NodeId to, raft::Index index) {
  Message m;
  m.type = MessageType::kSnap;
  m.from = from;
  m.to = to;
  m.term = 5;
  raft::Snapshot s;
  s.metadata.index = index;
  s.metadata.term = 4;
  s.metadata.conf_state.voters = {1, 2, 3};
  s.data = "opaque";
  m.snapshot = s;
  return m;
}

struct DoneFlag {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<bool> ok;
  std::function<void(bool)> Callback() {
    return [this](bool v) {
      std::lock_guard<std::mutex> l(mu);
      ok = v;
      cv.notify_all();
    };
  }
  std::optional<bool> Wait(std::chrono::milliseconds timeout = 20s) {
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, timeout, [&] { return ok.has_value(); });
    return ok;
  }
};

TEST(TransportTest, SnapshotArrivesByteIdentical) {
  Member a(1), b(2);
  a.Start();
  b.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b.transport->port())).ok());
  TempDir src;
  auto files = MakeCheckpoint(src.path() + "/checkpoint");
  DoneFlag done;
  const Message m = SnapMessage(1, 2, 42);
  a.transport->SendSnapshot(m, src.path() + "/checkpoint", done.Callback());
  ASSERT_EQ(done.Wait(), std::optional<bool>(true));
  // on_snapshot ran before the sender heard "ok".
  auto snaps = b.inbox.Snapshots();
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].first, m);
  EXPECT_EQ(snaps[0].second, b.snapshot_dir() + "/incoming-42-1");
  EXPECT_EQ(ReadDir(snaps[0].second), files);
  uint64_t total = 0;
  for (const auto& [name, data] : files) total += data.size();
  EXPECT_EQ(a.transport->metrics().snapshot_bytes_sent, total);
  EXPECT_EQ(b.transport->metrics().snapshot_bytes_received, total);
  EXPECT_EQ(a.transport->metrics().snapshots_sent, 1u);
}

TEST(TransportTest, SnapshotToDeadPeerFailsAndLeavesNothing) {
  const int b_port = FreePort();
  Member a(1), b(2, b_port);  // b exists (with its snapshot dir) but is not serving
  a.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b_port)).ok());
  TempDir src;
  MakeCheckpoint(src.path() + "/checkpoint");
  DoneFlag done;
  a.transport->SendSnapshot(SnapMessage(1, 2, 9), src.path() + "/checkpoint", done.Callback());
  ASSERT_EQ(done.Wait(), std::optional<bool>(false));
  EXPECT_FALSE(fs::exists(b.snapshot_dir() + "/incoming-9-1"));
  EXPECT_EQ(a.transport->metrics().snapshots_failed, 1u);

  // Unknown peer and non-snapshot messages fail at once.
  DoneFlag unknown;
  a.transport->SendSnapshot(SnapMessage(1, 5, 9), src.path(), unknown.Callback());
  EXPECT_EQ(unknown.Wait(0ms), std::optional<bool>(false));
}

// A raw client of member `to`, for frames the Transport would never send.
std::unique_ptr<peer::Peer::Stub> RawStub(int port) {
  return peer::Peer::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

peer::SnapshotChunk Header(const Message& m,
                           const std::vector<std::pair<std::string, uint64_t>>& files) {
  peer::SnapshotChunk c;
  auto* h = c.mutable_header();
  h->set_cluster_id(kClusterId);
  h->set_from_member_id(m.from);
  h->set_to_member_id(m.to);
  ToProto(m, h->mutable_message());
  for (const auto& [name, size] : files) {
    auto* f = h->add_files();
    f->set_name(name);
    f->set_size_bytes(size);
  }
  return c;
}

peer::SnapshotChunk Data(uint32_t file, const std::string& data, bool last, std::string sha = "") {
  peer::SnapshotChunk c;
  c.mutable_data()->set_file_index(file);
  c.mutable_data()->set_data(data);
  c.mutable_data()->set_last(last);
  c.mutable_data()->set_sha256(sha);
  return c;
}

TEST(TransportTest, BrokenSnapshotTransfersLeaveNoPartialDirectory) {
  Member b(2);
  b.Start();
  auto stub = RawStub(b.transport->port());
  const Message m = SnapMessage(1, 2, 77);
  const std::string incoming = b.snapshot_dir() + "/incoming-77-1";

  {  // The sender vanishes mid-file.
    grpc::ClientContext ctx;
    peer::SnapshotReply reply;
    auto w = stub->SendSnapshot(&ctx, &reply);
    ASSERT_TRUE(w->Write(Header(m, {{"f", 1 << 20}})));
    ASSERT_TRUE(w->Write(Data(0, std::string(1000, 'x'), false)));
    // Let the receiver create the directory and write, then cut the call.
    ASSERT_TRUE(Eventually([&] { return fs::exists(incoming + "/f"); }));
    ctx.TryCancel();
    EXPECT_FALSE(w->Finish().ok());
  }
  {  // A checksum that does not match.
    grpc::ClientContext ctx;
    peer::SnapshotReply reply;
    auto w = stub->SendSnapshot(&ctx, &reply);
    ASSERT_TRUE(w->Write(Header(m, {{"f", 3}})));
    w->Write(Data(0, "abc", true, std::string(32, '\0')));
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  }
  {  // The stream ends before every file was sent.
    grpc::ClientContext ctx;
    peer::SnapshotReply reply;
    auto w = stub->SendSnapshot(&ctx, &reply);
    ASSERT_TRUE(w->Write(Header(m, {{"f", 3}, {"g", 3}})));
    w->WritesDone();
    EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
  }
  {  // A file name that escapes the directory.
    grpc::ClientContext ctx;
    peer::SnapshotReply reply;
    auto w = stub->SendSnapshot(&ctx, &reply);
    w->Write(Header(m, {{"../evil", 3}}));
    w->WritesDone();
    EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The cancelled handler cleans up asynchronously.
  EXPECT_TRUE(Eventually([&] { return !fs::exists(incoming); }, 2s));
  EXPECT_TRUE(b.inbox.Snapshots().empty());
}

TEST(TransportTest, FrameFromAnotherClusterIsRefused) {
  Member b(2);
  b.Start();
  {  // On the wire: the stream ends with FAILED_PRECONDITION and says why.
    auto stub = RawStub(b.transport->port());
    grpc::ClientContext ctx;
    auto stream = stub->Stream(&ctx);
    peer::Frame frame;
    frame.set_cluster_id(0xbad);
    frame.set_from_member_id(1);
    frame.set_to_member_id(2);
    ToProto(App(1, 2, 0), frame.add_messages());
    stream->Write(frame);
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(s.error_message(), "cluster ID mismatch: local c1, remote bad");
  }
  {  // Through a Transport configured for another cluster.
    Member a(1, 0, /*cluster_id=*/0xbad);
    a.Start();
    ASSERT_TRUE(a.transport->AddPeer(2, Url(b.transport->port())).ok());
    uint64_t seq = 0;
    ASSERT_TRUE(Eventually([&] {
      a.transport->Send({App(1, 2, seq++)});
      return a.inbox.UnreachableCount() > 0;
    }));
    // Refused streams are never counted as a working link again.
    EXPECT_EQ(a.transport->metrics().reconnects, 0u);
  }
  {  // A frame for another member of the right cluster.
    auto stub = RawStub(b.transport->port());
    grpc::ClientContext ctx;
    auto stream = stub->Stream(&ctx);
    peer::Frame frame;
    frame.set_cluster_id(kClusterId);
    frame.set_from_member_id(1);
    frame.set_to_member_id(3);
    ToProto(App(1, 3, 0), frame.add_messages());
    stream->Write(frame);
    stream->WritesDone();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  EXPECT_TRUE(b.inbox.From(1).empty());
  EXPECT_GE(b.transport->metrics().refused_frames, 3u);
  EXPECT_EQ(b.transport->metrics().received_messages, 0u);
}

TEST(TransportTest, StopIsPromptWithPeersDown) {
  Member a(1), b(2);
  a.Start();
  b.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b.transport->port())).ok());  // up, stream open
  ASSERT_TRUE(a.transport->AddPeer(3, Url(FreePort())).ok());           // down, backing off
  ASSERT_TRUE(a.transport->AddPeer(4, Url(FreePort())).ok());
  // A first connect can fail on a loaded machine, and the batch in flight
  // then goes with it: send again until peer 2's stream has carried 50.
  bool carried = false;
  for (int round = 0; round < 10 && !carried; round++) {
    for (uint64_t i = 0; i < 50; i++) {
      a.transport->Send({App(1, 2, i), App(1, 3, i), App(1, 4, i)});
    }
    carried = b.inbox.WaitFor([&] { return b.inbox.CountFromLocked(1) >= 50; }, 3s);
  }
  ASSERT_TRUE(carried);
  ASSERT_TRUE(a.inbox.WaitFor([&] { return a.inbox.unreachable().size() >= 2; }));
  TempDir src;
  MakeCheckpoint(src.path());
  DoneFlag done;
  a.transport->SendSnapshot(SnapMessage(1, 3, 1), src.path(), done.Callback());

  auto start = std::chrono::steady_clock::now();
  a.transport->Stop();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 1s);
  EXPECT_EQ(done.Wait(0ms), std::optional<bool>(false));
  a.transport->Stop();                 // idempotent
  a.transport->Send({App(1, 2, 99)});  // after Stop: dropped, no crash
  start = std::chrono::steady_clock::now();
  b.transport->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(TransportTest, RemovePeerStopsItsSender) {
  Member a(1), b(2);
  a.Start();
  b.Start();
  ASSERT_TRUE(a.transport->AddPeer(2, Url(b.transport->port())).ok());
  a.transport->Send({App(1, 2, 0)});
  ASSERT_TRUE(b.inbox.WaitFor([&] { return b.inbox.CountFromLocked(1) == 1; }));
  a.transport->RemovePeer(2);
  const uint64_t dropped = a.transport->metrics().dropped_messages;
  a.transport->Send({App(1, 2, 1)});
  EXPECT_EQ(a.transport->metrics().dropped_messages, dropped + 1);
  EXPECT_FALSE(a.transport->AddPeer(3, "localhost:1").ok());  // no scheme
}

}  // namespace
}  // namespace ganglion::server
