// Watch on a real ganglion cluster: a client that watches through a kill -9
// of the member it is connected to (the leader) sees every acknowledged write
// exactly once and in order, resuming on another member from its last
// revision + 1, as etcd documents for its clients; and a member that stops
// with streams open ends them all and exits cleanly.
#include <grpcpp/grpcpp.h>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/process_cluster.h"

namespace ganglion::tests {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

ClusterOptions Members(int n) {
  ClusterOptions options;
  options.binary = GANGLION_BINARY;
  options.members = n;
  return options;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& endpoint) {
  return grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
}

// Puts w/<n> in order, one at a time, against whichever member answers;
// records the revision of every acknowledged write.
class Writer {
 public:
  explicit Writer(std::vector<std::string> endpoints) : endpoints_(std::move(endpoints)) {}
  ~Writer() { Stop(); }
  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<int64_t, std::string> acked() const {  // revision -> key
    std::lock_guard lock(mu_);
    return acked_;
  }
  bool WaitForMore(size_t n, milliseconds timeout) {
    const size_t target = acked().size() + n;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      if (acked().size() >= target) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

 private:
  void Run() {
    size_t next = 0;
    for (uint64_t n = 0; !stop_; n++) {
      etcdserverpb::PutRequest req;
      req.set_key(absl::StrCat("w/", n));
      req.set_value(absl::StrCat("v", n));
      for (int attempt = 0; attempt < 50 && !stop_; attempt++) {
        auto stub = etcdserverpb::KV::NewStub(Channel(endpoints_[next % endpoints_.size()]));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(1500));
        etcdserverpb::PutResponse resp;
        if (stub->Put(&ctx, req, &resp).ok()) {
          std::lock_guard lock(mu_);
          acked_[resp.header().revision()] = req.key();
          break;
        }
        next++;
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
  }

  const std::vector<std::string> endpoints_;
  mutable std::mutex mu_;
  std::map<int64_t, std::string> acked_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Watches the prefix w/ from revision 2 on `endpoints[first]`; when the
// stream breaks it moves to the next endpoint and resumes at last + 1.
class Watcher {
 public:
  Watcher(std::vector<std::string> endpoints, size_t first)
      : endpoints_(std::move(endpoints)), next_(first) {}
  ~Watcher() { Stop(); }
  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    {
      std::lock_guard lock(mu_);
      if (ctx_) ctx_->TryCancel();
    }
    if (thread_.joinable()) thread_.join();
  }
  struct Seen {
    int64_t rev;
    std::string key;
  };
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  int reconnects() const { return reconnects_; }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  bool WaitUntilRevision(int64_t rev, milliseconds timeout) {
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      auto s = seen();
      if (!s.empty() && s.back().rev >= rev) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

 private:
  void Run() {
    int64_t next_rev = 2;  // the first write's revision in a new cluster
    // Bounded: at most 200 stream attempts over the test.
    for (int attempt = 0; attempt < 200 && !stop_; attempt++) {
      auto stub = etcdserverpb::Watch::NewStub(Channel(endpoints_[next_ % endpoints_.size()]));
      auto ctx = std::make_shared<grpc::ClientContext>();
      {
        std::lock_guard lock(mu_);
        ctx_ = ctx;
        if (stop_) return;
      }
      auto stream = stub->Watch(ctx.get());
      etcdserverpb::WatchRequest req;
      auto* create = req.mutable_create_request();
      create->set_key("w/");
      create->set_range_end("w0");  // the prefix w/
      create->set_start_revision(next_rev);
      if (stream->Write(req)) {
        etcdserverpb::WatchResponse resp;
        while (stream->Read(&resp)) {
          if (resp.canceled()) {
            std::lock_guard lock(mu_);
            error_ = absl::StrCat("canceled: compact_revision=", resp.compact_revision(), " ",
                                  resp.cancel_reason());
            return;
          }
          std::lock_guard lock(mu_);
          for (const auto& ev : resp.events()) {
            seen_.push_back({ev.kv().mod_revision(), ev.kv().key()});
            next_rev = ev.kv().mod_revision() + 1;
          }
        }
      }
      ctx->TryCancel();
      (void)stream->Finish();
      if (stop_) return;
      reconnects_++;
      next_++;
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  const std::vector<std::string> endpoints_;
  size_t next_;
  mutable std::mutex mu_;
  std::shared_ptr<grpc::ClientContext> ctx_;  // guarded by mu_
  std::vector<Seen> seen_;                    // guarded by mu_
  std::string error_;                         // guarded by mu_
  std::atomic<int> reconnects_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(GanglionWatch, WatcherSeesEveryAcknowledgedWriteOnceInOrderAcrossLeaderKill) {
  ProcessCluster cluster(Members(3));
  ASSERT_TRUE(cluster.Start().ok());
  auto leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  std::vector<std::string> endpoints;
  for (int i = 0; i < cluster.size(); i++) endpoints.push_back(cluster.client_endpoint(i));

  Watcher watcher(endpoints, static_cast<size_t>(*leader));
  watcher.Start();
  Writer writer(endpoints);
  writer.Start();
  ASSERT_TRUE(writer.WaitForMore(200, milliseconds(30000)));
  ASSERT_TRUE(cluster.Kill(*leader).ok());
  ASSERT_TRUE(writer.WaitForMore(200, milliseconds(60000)));
  writer.Stop();

  const auto acked = writer.acked();
  ASSERT_FALSE(acked.empty());
  const int64_t last_acked = acked.rbegin()->first;
  EXPECT_TRUE(watcher.WaitUntilRevision(last_acked, milliseconds(30000)))
      << "watcher stopped at " << (watcher.seen().empty() ? 0 : watcher.seen().back().rev) << " of "
      << last_acked << " " << watcher.error();
  watcher.Stop();
  EXPECT_EQ(watcher.error(), "");
  EXPECT_GE(watcher.reconnects(), 1) << "the kill did not break the watch stream";

  const auto seen = watcher.seen();
  std::map<int64_t, std::string> by_rev;
  for (size_t i = 0; i < seen.size(); i++) {
    // Ordered and unique: one event per put, revisions strictly increasing.
    if (i > 0) {
      ASSERT_LT(seen[i - 1].rev, seen[i].rev) << "at event " << i;
    }
    by_rev[seen[i].rev] = seen[i].key;
  }
  // Reliable: every revision from the first write on is there (only w/ keys
  // are written), and every acknowledged write at its revision.
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().rev, 2);
  EXPECT_EQ(static_cast<int64_t>(seen.size()), seen.back().rev - 1) << "a revision is missing";
  for (const auto& [rev, key] : acked) {
    auto it = by_rev.find(rev);
    ASSERT_NE(it, by_rev.end()) << "acknowledged " << key << " at " << rev << " never seen";
    EXPECT_EQ(it->second, key);
  }
}


// SIGTERM with watch streams open: idle ones, ones that just got events, and
// one whose client reads nothing, so that the member's write to it waits on
// flow control. The member ends every stream and exits 0 in time; the
// clients see their streams end with an error.
TEST(GanglionWatch, MemberStopsCleanlyWithStreamsOpenAndAWriteStalled) {
  ProcessCluster cluster(Members(1));
  ASSERT_TRUE(cluster.Start().ok());
  const std::string endpoint = cluster.client_endpoint(0);
  auto connection = [&](int n) {
    grpc::ChannelArguments args;
    args.SetInt("ganglion_test_connection", n);  // a distinct connection each
    return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  };
  auto create = [](const std::string& prefix) {
    etcdserverpb::WatchRequest req;
    req.mutable_create_request()->set_key(prefix + "/");
    req.mutable_create_request()->set_range_end(prefix + "0");
    return req;
  };

  auto stalled_stub = etcdserverpb::Watch::NewStub(connection(0));
  grpc::ClientContext stalled_ctx;
  auto stalled = stalled_stub->Watch(&stalled_ctx);
  ASSERT_TRUE(stalled->Write(create("big")));

  struct Reader {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest,
                                             etcdserverpb::WatchResponse>>
        stream;
    std::atomic<int> events{0};
    grpc::Status status;
    std::thread thread;
  };
  constexpr int kReaders = 20, kWatchersEach = 3, kPuts = 10;
  std::vector<std::unique_ptr<etcdserverpb::Watch::Stub>> stubs;
  stubs.push_back(etcdserverpb::Watch::NewStub(connection(1)));
  stubs.push_back(etcdserverpb::Watch::NewStub(connection(2)));
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < kReaders; i++) {
    auto r = std::make_unique<Reader>();
    r->stream = stubs[i % stubs.size()]->Watch(&r->ctx);
    for (int w = 0; w < kWatchersEach; w++) ASSERT_TRUE(r->stream->Write(create("s")));
    r->thread = std::thread([r = r.get()] {
      etcdserverpb::WatchResponse resp;
      while (r->stream->Read(&resp)) r->events += resp.events_size();
      r->status = r->stream->Finish();
    });
    readers.push_back(std::move(r));
  }

  auto kv = etcdserverpb::KV::NewStub(connection(3));
  auto put = [&](const std::string& key, size_t value_bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(10000));
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(std::string(value_bytes, 'v'));
    etcdserverpb::PutResponse resp;
    return kv->Put(&ctx, req, &resp);
  };
  // 16 MiB of events for a client that reads none of them: more than any
  // flow-control window lets through.
  for (int i = 0; i < 64; i++) {
    ASSERT_TRUE(put(absl::StrCat("big/", i), 256 * 1024).ok());
  }
  for (int i = 0; i < kPuts; i++) ASSERT_TRUE(put(absl::StrCat("s/", i), 10).ok());
  for (auto deadline = Clock::now() + milliseconds(20000); Clock::now() < deadline;) {
    int behind = 0;
    for (const auto& r : readers) behind += r->events < kWatchersEach * kPuts;
    if (behind == 0) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  for (const auto& r : readers) EXPECT_EQ(r->events, kWatchersEach * kPuts);

  ASSERT_TRUE(cluster.Kill(0, SIGTERM).ok()) << "the member did not exit in time";
  const int status = cluster.member(0).wait_status;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  for (auto& r : readers) {
    r->thread.join();
    EXPECT_FALSE(r->status.ok());
  }
  stalled_ctx.TryCancel();
  (void)stalled->Finish();
}

}  // namespace
}  // namespace ganglion::tests
