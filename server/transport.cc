#include "server/transport.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/config.h"
#include "server/peer.grpc.pb.h"
#include "server/raft_pb.h"

namespace ganglion::server {
namespace fs = std::filesystem;

namespace {

// A snapshot may not list more files than this (a RocksDB checkpoint has tens).
constexpr int kSnapshotFilesMax = 100000;

// Rough wire size of a message, for batching; exactness does not matter.
size_t ApproxBytes(const raft::Message& m) {
  size_t n = 64 + m.context.size();
  for (const raft::Entry& e : m.entries) n += 16 + e.data.size();
  if (m.snapshot) n += m.snapshot->data.size() + 64;
  return n;
}

std::string Hex(uint64_t v) {
  return absl::StrCat(absl::Hex(v));
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const char* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string Final() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

bool PlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

// One outgoing link. Its thread opens and reopens the stream; frames are
// written by whoever finds the stream idle with messages queued: Send (the
// raft loop, so a Ready's appends leave without waking another thread) or
// the stream's own write completion.
struct Transport::PeerLink {
  raft::NodeId id = raft::kNoNode;
  std::string address;                     // immutable
  std::shared_ptr<grpc::Channel> channel;  // immutable, thread-safe
  std::unique_ptr<peer::Peer::Stub> stub;  // immutable, thread-safe

  std::mutex mu;
  std::condition_variable cv;
  std::deque<raft::Message> queue;  // guarded by mu; size <= queue_messages_max
  bool stopping = false;            // guarded by mu
  // Guarded by mu: the open stream, from when its call starts until its read
  // sees the end (null otherwise). Writes start only through it, under mu.
  PeerStream* stream = nullptr;
  bool writing = false;          // guarded by mu: a frame is being written on `stream`
  bool stream_ended = false;     // guarded by mu: the open stream's call is over
  bool stream_accepted = false;  // guarded by mu: the receiver acknowledged the open stream
  bool failing = false;          // guarded by mu: the last stream failed (log once per streak)
  std::thread thread;            // RunLink; started once, joined by StopLink
};

// One outgoing stream, on gRPC's callback API: a write never blocks the
// thread that starts it, and completions run on gRPC's threads. The receiver
// answers only the first frame (an acknowledgement), so the one read in
// flight ends only with the call: a dead peer is noticed at once, not at
// the next write, and queued messages wait for the next stream instead of
// being written into a broken one.
//
// Writes start from threads gRPC does not know about (Send's), so the stream
// holds its call open (AddHold) for as long as it is the link's `stream`: a
// call may otherwise end, and gRPC free it, between a thread seeing the
// stream and starting a write on it. The read's end takes the stream off
// the link and only then lets the call finish.
class Transport::PeerStream final : public grpc::ClientBidiReactor<peer::Frame, peer::StreamReply> {
 public:
  PeerStream(Transport* t, PeerLink* link) : t_(t), link_(link) {}

  grpc::ClientContext ctx;
  peer::Frame frame;  // the write in flight; filled under link mu
  size_t frame_messages = 0;
  grpc::Status status;  // the call's end; read after it ended

  // Binds the call; writes may start from here on, and go out once
  // StartCall has run.
  void Bind() {
    link_->stub->async()->Stream(&ctx, this);
    AddHold();
    StartRead(&ack_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The call is over. No write starts after this (a write in flight
      // completes, failed); then gRPC may finish the call, and OnDone runs.
      {
        std::lock_guard<std::mutex> l(link_->mu);
        link_->stream = nullptr;
      }
      RemoveHold();
      return;
    }
    {
      std::lock_guard<std::mutex> l(link_->mu);
      if (!link_->stream_accepted) {
        link_->stream_accepted = true;
        if (link_->failing) {
          link_->failing = false;
          t_->counters_.reconnects++;
          spdlog::info("peer stream reconnected member={} peer={}", Hex(t_->options_.self_id),
                       Hex(link_->id));
        }
      }
    }
    StartRead(&ack_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(link_->mu);
    link_->writing = false;
    if (!ok) {
      // The call is over (OnDone follows); the frame went down with it.
      t_->counters_.dropped_messages += frame_messages;
      return;
    }
    t_->counters_.sent_messages += frame_messages;
    t_->counters_.sent_frames++;
    t_->WriteNextLocked(*link_);
  }

  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> l(link_->mu);
    status = s;
    link_->stream_ended = true;
    // Under mu: RunLink frees this stream once it sees the end, and it can
    // only look after this returns.
    link_->cv.notify_all();
  }

 private:
  Transport* const t_;
  PeerLink* const link_;  // outlives the stream: RunLink waits for OnDone
  peer::StreamReply ack_;
};

struct Transport::SnapshotSend {
  std::thread thread;
  std::atomic<bool> finished{false};
};

// The receiving side. A peer's message stream is a callback reactor: each
// frame is handled on the gRPC thread that read it, which hands the messages
// straight to on_messages (the raft loop's inbox) without waking a thread of
// its own. Snapshot transfers and the unary calls stay on gRPC's synchronous
// threads: they block on disk and on the apply loop.
class Transport::Service final : public peer::Peer::WithCallbackMethod_Stream<peer::Peer::Service> {
 public:
  explicit Service(Transport* t) : t_(t) {}

  grpc::ServerBidiReactor<peer::Frame, peer::StreamReply>* Stream(
      grpc::CallbackServerContext* /*ctx*/) override {
    return new IncomingStream(this);
  }

  grpc::Status Members(grpc::ServerContext* /*ctx*/, const peer::MembersRequest* /*req*/,
                       peer::MembersReply* reply) override {
    if (!t_->options_.on_members) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "member is not serving its members");
    }
    *reply = t_->options_.on_members();
    return grpc::Status::OK;
  }

  grpc::Status LeaseRenew(grpc::ServerContext* /*ctx*/, const peer::LeaseRenewRequest* req,
                          peer::LeaseRenewReply* reply) override {
    if (req->cluster_id() != t_->options_.cluster_id) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "cluster id mismatch");
    }
    if (!t_->options_.on_lease_renew) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "leases not served");
    }
    auto ttl = t_->options_.on_lease_renew(*req);
    if (!ttl.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(ttl.status().code()),
                          std::string(ttl.status().message()));
    }
    reply->set_ttl(*ttl);
    return grpc::Status::OK;
  }

  grpc::Status LeaseTimeToLive(grpc::ServerContext* /*ctx*/, const peer::LeaseTtlRequest* req,
                               peer::LeaseTtlReply* reply) override {
    if (req->cluster_id() != t_->options_.cluster_id) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "cluster id mismatch");
    }
    if (!t_->options_.on_lease_ttl) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "leases not served");
    }
    auto r = t_->options_.on_lease_ttl(*req);
    if (!r.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(r.status().code()),
                          std::string(r.status().message()));
    }
    *reply = *std::move(r);
    return grpc::Status::OK;
  }

  grpc::Status SendSnapshot(grpc::ServerContext* ctx,
                            grpc::ServerReader<peer::SnapshotChunk>* reader,
                            peer::SnapshotReply* reply) override {
    peer::SnapshotChunk chunk;
    if (!reader->Read(&chunk) || !chunk.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "snapshot transfer must start with a header");
    }
    const peer::SnapshotChunk::Header header = chunk.header();
    if (grpc::Status s =
            CheckIds(header.cluster_id(), header.from_member_id(), header.to_member_id());
        !s.ok()) {
      return s;
    }
    if (t_->DropsFrom(header.from_member_id())) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fault injection: dropped");
    }
    auto message = FromProto(header.message());
    if (!message.ok() || message->type != raft::MessageType::kSnap || !message->snapshot) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "snapshot transfer header does not carry a MsgSnap");
    }
    if (header.files_size() > kSnapshotFilesMax) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "too many snapshot files");
    }
    std::set<std::string> names;
    for (const peer::SnapshotFile& f : header.files()) {
      if (!PlainFileName(f.name()) || !names.insert(f.name()).second) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("bad snapshot file name \"", f.name(), "\""));
      }
    }

    const std::string dir =
        (fs::path(t_->options_.snapshot_dir) /
         absl::StrCat("incoming-", message->snapshot->metadata.index, "-", Hex(message->from)))
            .string();
    uint64_t received_bytes = 0;
    grpc::Status status = ReceiveFiles(ctx, reader, header, dir, &received_bytes);
    if (!status.ok()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      spdlog::warn("snapshot receive failed from={} index={} error=\"{}\"", Hex(message->from),
                   message->snapshot->metadata.index, status.error_message());
      return status;
    }
    t_->counters_.snapshot_bytes_received += received_bytes;
    spdlog::info("snapshot received from={} index={} files={} bytes={} dir={}", Hex(message->from),
                 message->snapshot->metadata.index, header.files_size(), received_bytes, dir);
    if (t_->options_.on_snapshot) t_->options_.on_snapshot(*std::move(message), dir);
    reply->set_received_bytes(received_bytes);
    return grpc::Status::OK;
  }

 private:
  grpc::Status CheckIds(uint64_t cluster_id, uint64_t from, uint64_t to) {
    const TransportOptions& o = t_->options_;
    if (cluster_id != o.cluster_id) {
      t_->counters_.refused_frames++;
      spdlog::error("peer frame refused reason=cluster-id-mismatch local={} remote={} from={}",
                    Hex(o.cluster_id), Hex(cluster_id), Hex(from));
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("cluster ID mismatch: local ", Hex(o.cluster_id),
                                       ", remote ", Hex(cluster_id)));
    }
    if (to != o.self_id) {
      t_->counters_.refused_frames++;
      spdlog::error("peer frame refused reason=member-id-mismatch local={} addressed-to={} from={}",
                    Hex(o.self_id), Hex(to), Hex(from));
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("member ID mismatch: this member is ", Hex(o.self_id),
                                       ", frame is for ", Hex(to)));
    }
    return grpc::Status::OK;
  }

  // Writes every file of the transfer under dir (replacing an earlier
  // attempt), checking order, sizes and SHA-256 sums, and syncs them.
  grpc::Status ReceiveFiles(grpc::ServerContext* ctx,
                            grpc::ServerReader<peer::SnapshotChunk>* reader,
                            const peer::SnapshotChunk::Header& header, const std::string& dir,
                            uint64_t* received_bytes) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    if (ec) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("cannot create ", dir, ": ", ec.message()));
    }
    int file_index = 0;
    int fd = -1;
    uint64_t file_bytes = 0;
    std::unique_ptr<Sha256> sha;
    auto fail = [&](grpc::StatusCode code, std::string why) {
      if (fd >= 0) ::close(fd);
      return grpc::Status(code, std::move(why));
    };
    peer::SnapshotChunk chunk;
    while (reader->Read(&chunk)) {
      if (!chunk.has_data() || file_index >= header.files_size() ||
          chunk.data().file_index() != static_cast<uint32_t>(file_index)) {
        return fail(grpc::StatusCode::INVALID_ARGUMENT, "snapshot chunk out of order");
      }
      const peer::SnapshotFile& file = header.files(file_index);
      if (fd < 0) {
        std::string path = (fs::path(dir) / file.name()).string();
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return fail(grpc::StatusCode::INTERNAL, "cannot create " + path);
        file_bytes = 0;
        sha = std::make_unique<Sha256>();
      }
      const std::string& data = chunk.data().data();
      file_bytes += data.size();
      if (file_bytes > file.size_bytes()) {
        return fail(grpc::StatusCode::DATA_LOSS, "snapshot file " + file.name() + " too long");
      }
      sha->Update(data.data(), data.size());
      if (!WriteAll(fd, data)) return fail(grpc::StatusCode::INTERNAL, "write failed");
      *received_bytes += data.size();
      if (!chunk.data().last()) continue;
      if (file_bytes != file.size_bytes() || sha->Final() != chunk.data().sha256()) {
        return fail(grpc::StatusCode::DATA_LOSS,
                    "snapshot file " + file.name() + " has the wrong size or checksum");
      }
      bool synced = ::fsync(fd) == 0;
      ::close(fd);
      fd = -1;
      if (!synced) return fail(grpc::StatusCode::INTERNAL, "fsync failed");
      file_index++;
    }
    if (ctx->IsCancelled()) return fail(grpc::StatusCode::CANCELLED, "snapshot transfer cancelled");
    if (file_index != header.files_size()) {
      return fail(grpc::StatusCode::DATA_LOSS, "snapshot transfer ended early");
    }
    if (!SyncDir(dir)) return fail(grpc::StatusCode::INTERNAL, "fsync of " + dir + " failed");
    return grpc::Status::OK;
  }

  // One incoming message stream: reads a frame at a time, in order; the
  // first frame that passes the checks is acknowledged with one reply.
  class IncomingStream final : public grpc::ServerBidiReactor<peer::Frame, peer::StreamReply> {
   public:
    explicit IncomingStream(Service* service) : service_(service) { StartRead(&frame_); }

    void OnReadDone(bool ok) override {
      if (!ok) {
        // The sender closed its side, or the call was cancelled.
        End(grpc::Status::OK);
        return;
      }
      if (grpc::Status s = service_->HandleFrame(frame_); !s.ok()) {
        End(s);
        return;
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        if (!acknowledged_) {
          // Tells the sender this stream passed the checks, so it can tell a
          // working link from one that is refused after every first frame.
          acknowledged_ = true;
          writing_ = true;
          StartWrite(&ack_);
        }
      }
      StartRead(&frame_);
    }

    void OnWriteDone(bool /*ok*/) override {
      std::lock_guard<std::mutex> l(mu_);
      writing_ = false;
      if (ended_) Finish(finish_status_);  // End() ran during the write
    }

    void OnDone() override { delete this; }

   private:
    // Finishes once, after the acknowledgement's write if one is in flight.
    void End(const grpc::Status& status) {
      std::lock_guard<std::mutex> l(mu_);
      if (ended_) return;
      ended_ = true;
      if (writing_) {
        finish_status_ = status;  // OnWriteDone finishes
        return;
      }
      Finish(status);
    }

    Service* const service_;
    peer::Frame frame_;  // owned by the read in flight (one at a time)
    const peer::StreamReply ack_;
    std::mutex mu_;
    bool acknowledged_ = false;   // guarded by mu_
    bool writing_ = false;        // guarded by mu_
    bool ended_ = false;          // guarded by mu_
    grpc::Status finish_status_;  // guarded by mu_; set by End() during a write
  };

  // Checks, decodes and delivers one frame of a message stream; a failed
  // status ends the stream.
  grpc::Status HandleFrame(const peer::Frame& frame) {
    if (grpc::Status s = CheckIds(frame.cluster_id(), frame.from_member_id(), frame.to_member_id());
        !s.ok()) {
      return s;
    }
    std::vector<raft::Message> messages;
    messages.reserve(frame.messages_size());
    for (const peer::Message& pb : frame.messages()) {
      auto m = FromProto(pb);
      if (!m.ok()) {
        t_->counters_.refused_frames++;
        spdlog::error("peer frame refused reason=undecodable from={} error=\"{}\"",
                      Hex(frame.from_member_id()), std::string(m.status().message()));
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(m.status().message()));
      }
      messages.push_back(*std::move(m));
    }
    if (t_->DropsFrom(frame.from_member_id())) {
      // Read and dropped, so the sender sees a healthy stream that loses
      // everything, as behind a firewall that drops packets.
      t_->counters_.fault_dropped_messages += messages.size();
      return grpc::Status::OK;
    }
    t_->counters_.received_messages += messages.size();
    if (t_->options_.on_messages && !messages.empty()) {
      t_->options_.on_messages(std::move(messages));
    }
    return grpc::Status::OK;
  }

  Transport* const t_;
};

Transport::Transport(TransportOptions options) : options_(std::move(options)) {}

Transport::~Transport() {
  Stop();
}

absl::Status Transport::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (stopped_ || server_) return absl::FailedPreconditionError("transport already started");
  if (!options_.snapshot_dir.empty()) {
    std::error_code ec;
    fs::create_directories(options_.snapshot_dir, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create ", options_.snapshot_dir, ": ", ec.message()));
    }
  }
  service_ = std::make_unique<Service>(this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen_addr, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.frame_bytes_max));
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen_addr));
  }
  spdlog::info("peer transport listening member={} addr={} port={}", Hex(options_.self_id),
               options_.listen_addr, port_);
  return absl::OkStatus();
}

absl::Status Transport::AddPeer(raft::NodeId id, const std::string& url) {
  auto parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  auto link = std::make_shared<PeerLink>();
  link->id = id;
  link->address = parsed->HostPort();
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff, kept within ours so a restarted peer is
  // seen within reconnect_backoff_max. (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is
  // left alone: gRPC uses it as the connect timeout, 20 s by default, and a
  // short one fails every handshake on a slow link or a loaded host.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(options_.reconnect_backoff_min.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(options_.reconnect_backoff_max.count()));
  args.SetMaxSendMessageSize(static_cast<int>(options_.frame_bytes_max));
  link->channel =
      grpc::CreateCustomChannel(link->address, grpc::InsecureChannelCredentials(), args);
  link->stub = peer::Peer::NewStub(link->channel);

  std::shared_ptr<PeerLink> old;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return absl::FailedPreconditionError("transport stopped");
    auto it = peers_.find(id);
    if (it != peers_.end()) old = std::move(it->second);
    peers_[id] = link;
    link->thread = std::thread([this, link] {
      pthread_setname_np(pthread_self(), "peer-link");
      RunLink(link);
    });
  }
  if (old) StopLink(*old);
  spdlog::info("peer added member={} peer={} addr={}", Hex(options_.self_id), Hex(id),
               link->address);
  return absl::OkStatus();
}

void Transport::RemovePeer(raft::NodeId id) {
  std::shared_ptr<PeerLink> link;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    link = std::move(it->second);
    peers_.erase(it);
  }
  StopLink(*link);
  spdlog::info("peer removed member={} peer={}", Hex(options_.self_id), Hex(id));
}

void Transport::StopLink(PeerLink& link) {
  {
    std::lock_guard<std::mutex> l(link.mu);
    link.stopping = true;
    link.queue.clear();
  }
  link.cv.notify_all();
  if (link.thread.joinable()) link.thread.join();
}

void Transport::Send(std::vector<raft::Message> messages) {
  // Group by peer so each queue is filled under one lock acquisition and the
  // sender finds the whole Ready's worth of messages for one frame.
  std::map<raft::NodeId, std::vector<raft::Message*>> by_peer;
  for (raft::Message& m : messages) by_peer[m.to].push_back(&m);
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [to, group] : by_peer) {
    if (DropsTo(to)) {
      counters_.fault_dropped_messages += group.size();
      continue;
    }
    auto it = peers_.find(to);
    if (it == peers_.end()) {
      counters_.dropped_messages += group.size();
      continue;
    }
    PeerLink& link = *it->second;
    size_t dropped = 0;
    {
      std::lock_guard<std::mutex> ll(link.mu);
      for (raft::Message* m : group) {
        if (link.stopping || link.queue.size() >= options_.queue_messages_max) {
          dropped++;
        } else {
          link.queue.push_back(std::move(*m));
        }
      }
      // An open, idle stream takes them now, from this thread; otherwise
      // the write in flight or the next stream does.
      if (link.stream != nullptr) {
        WriteNextLocked(link);
      } else {
        link.cv.notify_one();
      }
    }
    counters_.dropped_messages += dropped;
  }
}

void Transport::WriteNextLocked(PeerLink& link) {
  if (link.stream == nullptr || link.writing || link.stopping || link.queue.empty()) return;
  PeerStream& stream = *link.stream;
  stream.frame.Clear();
  stream.frame.set_cluster_id(options_.cluster_id);
  stream.frame.set_from_member_id(options_.self_id);
  stream.frame.set_to_member_id(link.id);
  size_t bytes = 0, n = 0;
  while (!link.queue.empty() && (n == 0 || bytes < options_.batch_bytes_max)) {
    bytes += ApproxBytes(link.queue.front());
    ToProto(link.queue.front(), stream.frame.add_messages());
    link.queue.pop_front();
    n++;
  }
  stream.frame_messages = n;
  link.writing = true;
  // Under mu while the stream is on the link, so its hold still keeps the
  // call open: the write never starts on a call gRPC has finished. (The
  // frame keeps its memory for the next write: at most one batch.)
  stream.StartWrite(&stream.frame);
}

void Transport::RunLink(const std::shared_ptr<PeerLink>& link) {
  auto backoff = options_.reconnect_backoff_min;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(link->mu);
      link->cv.wait(l, [&] { return link->stopping || !link->queue.empty(); });
      if (link->stopping) return;
    }
    auto stream = std::make_unique<PeerStream>(this, link.get());
    stream->Bind();
    {
      std::lock_guard<std::mutex> l(link->mu);
      if (link->stopping) return;
      link->stream = stream.get();
      link->stream_ended = false;
      // The first frame is queued before the call starts, and goes out with it.
      WriteNextLocked(*link);
    }
    stream->StartCall();
    bool stopping;
    {
      std::unique_lock<std::mutex> l(link->mu);
      link->cv.wait(l, [&] { return link->stopping || link->stream_ended; });
      if (!link->stream_ended) {
        // Stopping: cancel the call and wait for its end, after which gRPC
        // no longer touches the stream.
        stream->ctx.TryCancel();
        link->cv.wait(l, [&] { return link->stream_ended; });
      }
      stopping = link->stopping;
    }
    if (stopping) return;
    bool was_failing;
    {
      std::lock_guard<std::mutex> l(link->mu);
      // A stream the receiver accepted was a working link: start over.
      if (link->stream_accepted) backoff = options_.reconnect_backoff_min;
      link->stream_accepted = false;
      was_failing = link->failing;
      link->failing = true;
    }
    const grpc::Status& status = stream->status;
    counters_.stream_failures++;
    if (!was_failing) {
      spdlog::warn("peer stream failed member={} peer={} addr={} code={} error=\"{}\"",
                   Hex(options_.self_id), Hex(link->id), link->address,
                   static_cast<int>(status.error_code()), status.error_message());
    }
    stream.reset();
    if (options_.on_unreachable) options_.on_unreachable(link->id);
    std::unique_lock<std::mutex> l(link->mu);
    link->cv.wait_for(l, backoff, [&] { return link->stopping; });
    if (link->stopping) return;
    backoff = std::min(backoff * 2, options_.reconnect_backoff_max);
  }
}

void Transport::SendSnapshot(const raft::Message& m, const std::string& checkpoint_dir,
                             std::function<void(bool ok)> done) {
  std::vector<std::unique_ptr<SnapshotSend>> finished;
  {
    std::unique_lock<std::mutex> l(mu_);
    // Reap transfers that have ended, so the list stays bounded.
    for (auto it = snapshot_sends_.begin(); it != snapshot_sends_.end();) {
      if ((*it)->finished) {
        finished.push_back(std::move(*it));
        it = snapshot_sends_.erase(it);
      } else {
        ++it;
      }
    }
    auto peer = peers_.find(m.to);
    bool can_start = !stopped_ && peer != peers_.end() && !DropsTo(m.to) &&
                     snapshot_sends_.size() < options_.snapshot_sends_max &&
                     m.type == raft::MessageType::kSnap && m.snapshot.has_value();
    if (can_start) {
      auto send = std::make_unique<SnapshotSend>();
      SnapshotSend* raw = send.get();
      send->thread = std::thread([this, link = peer->second, m, checkpoint_dir,
                                  done = std::move(done), raw]() mutable {
        RunSnapshotSend(std::move(link), std::move(m), std::move(checkpoint_dir), std::move(done));
        raw->finished = true;
      });
      snapshot_sends_.push_back(std::move(send));
      done = nullptr;
    }
  }
  for (auto& f : finished) f->thread.join();
  if (done) {
    counters_.snapshots_failed++;
    spdlog::warn("snapshot not sent member={} peer={} reason=cannot-start", Hex(options_.self_id),
                 Hex(m.to));
    done(false);
  }
}

void Transport::RunSnapshotSend(std::shared_ptr<PeerLink> link, raft::Message m, std::string dir,
                                std::function<void(bool)> done) {
  const uint64_t index = m.snapshot->metadata.index;
  std::vector<std::pair<std::string, uint64_t>> files;  // name, size
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) files.emplace_back(e.path().filename().string(), e.file_size());
  }
  std::sort(files.begin(), files.end());
  bool ok = !ec;
  std::string error = ec ? "cannot list " + dir + ": " + ec.message() : "";
  uint64_t sent_bytes = 0;

  grpc::ClientContext ctx;
  peer::SnapshotReply reply;
  {
    std::lock_guard<std::mutex> l(snapshot_mu_);
    if (snapshot_stopping_) {
      ok = false;
      error = "transport stopping";
    }
    if (ok) snapshot_contexts_.push_back(&ctx);
  }
  if (ok) {
    auto writer = link->stub->SendSnapshot(&ctx, &reply);
    peer::SnapshotChunk head;
    peer::SnapshotChunk::Header* h = head.mutable_header();
    h->set_cluster_id(options_.cluster_id);
    h->set_from_member_id(options_.self_id);
    h->set_to_member_id(link->id);
    ToProto(m, h->mutable_message());
    for (const auto& [name, size] : files) {
      peer::SnapshotFile* f = h->add_files();
      f->set_name(name);
      f->set_size_bytes(size);
    }
    ok = writer->Write(head);
    std::string buffer(options_.snapshot_chunk_bytes, '\0');
    for (size_t i = 0; ok && i < files.size(); i++) {
      const auto& [name, size] = files[i];
      std::ifstream in(fs::path(dir) / name, std::ios::binary);
      Sha256 sha;
      uint64_t file_sent = 0;
      do {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - file_sent));
        in.read(buffer.data(), static_cast<std::streamsize>(want));
        if (static_cast<size_t>(in.gcount()) != want) {
          ok = false;
          error = "short read of " + name;
          break;
        }
        sha.Update(buffer.data(), want);
        file_sent += want;
        peer::SnapshotChunk chunk;
        peer::SnapshotChunk::Data* d = chunk.mutable_data();
        d->set_file_index(static_cast<uint32_t>(i));
        d->set_data(buffer.data(), want);
        if (file_sent == size) {
          d->set_last(true);
          d->set_sha256(sha.Final());
        }
        ok = writer->Write(chunk);
        if (ok) sent_bytes += want;
      } while (ok && file_sent < size);
    }
    if (ok) ok = writer->WritesDone();
    if (!ok) ctx.TryCancel();  // a local failure must not look complete to the receiver
    grpc::Status status = writer->Finish();
    if (!status.ok()) {
      ok = false;
      if (error.empty()) error = status.error_message();
    }
    std::lock_guard<std::mutex> l(snapshot_mu_);
    std::erase(snapshot_contexts_, &ctx);
  }
  counters_.snapshot_bytes_sent += sent_bytes;
  if (ok) {
    counters_.snapshots_sent++;
    spdlog::info("snapshot sent member={} peer={} index={} files={} bytes={}",
                 Hex(options_.self_id), Hex(link->id), index, files.size(), sent_bytes);
  } else {
    counters_.snapshots_failed++;
    spdlog::warn("snapshot send failed member={} peer={} index={} error=\"{}\"",
                 Hex(options_.self_id), Hex(link->id), index, error);
  }
  if (done) done(ok);
}

void Transport::Stop() {
  std::map<raft::NodeId, std::shared_ptr<PeerLink>> peers;
  std::vector<std::unique_ptr<SnapshotSend>> sends;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
    sends.swap(snapshot_sends_);
  }
  for (auto& [id, link] : peers) StopLink(*link);
  {
    std::lock_guard<std::mutex> l(snapshot_mu_);
    snapshot_stopping_ = true;
    for (grpc::ClientContext* ctx : snapshot_contexts_) ctx->TryCancel();
  }
  for (auto& s : sends) s->thread.join();
  if (server_) {
    // A deadline already past: cancel every incoming stream now.
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }
}

TransportMetrics Transport::metrics() const {
  TransportMetrics m;
  m.sent_messages = counters_.sent_messages;
  m.sent_frames = counters_.sent_frames;
  m.dropped_messages = counters_.dropped_messages;
  m.stream_failures = counters_.stream_failures;
  m.reconnects = counters_.reconnects;
  m.received_messages = counters_.received_messages;
  m.refused_frames = counters_.refused_frames;
  m.snapshot_bytes_sent = counters_.snapshot_bytes_sent;
  m.snapshot_bytes_received = counters_.snapshot_bytes_received;
  m.snapshots_sent = counters_.snapshots_sent;
  m.snapshots_failed = counters_.snapshots_failed;
  m.fault_dropped_messages = counters_.fault_dropped_messages;
  return m;
}

namespace {

// One forwarded unary call: owns what the async call needs until it ends.
template <typename Request, typename Reply>
struct ForwardedCall {
  grpc::ClientContext ctx;
  Request req;
  Reply reply;
};

constexpr auto kForwardTimeout = std::chrono::seconds(5);

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

std::shared_ptr<Transport::PeerLink> Transport::LinkFor(raft::NodeId to) const {
  std::lock_guard lock(mu_);
  auto it = peers_.find(to);
  if (it == peers_.end() || stopped_) return nullptr;
  return it->second;
}

void Transport::ForwardLeaseRenew(raft::NodeId to, int64_t id, uint64_t min_applied_index,
                                  std::function<void(absl::StatusOr<int64_t>)> done) {
  std::shared_ptr<PeerLink> link = LinkFor(to);
  if (!link || DropsTo(to)) {
    done(absl::UnavailableError("etcdserver: no leader"));
    return;
  }
  auto call = std::make_shared<ForwardedCall<peer::LeaseRenewRequest, peer::LeaseRenewReply>>();
  call->req.set_cluster_id(options_.cluster_id);
  call->req.set_id(id);
  call->req.set_min_applied_index(min_applied_index);
  call->ctx.set_deadline(std::chrono::system_clock::now() + kForwardTimeout);
  link->stub->async()->LeaseRenew(&call->ctx, &call->req, &call->reply,
                                  [call, link, done = std::move(done)](grpc::Status s) {
                                    if (!s.ok()) {
                                      done(FromGrpc(s));
                                    } else {
                                      done(call->reply.ttl());
                                    }
                                  });
}

void Transport::ForwardLeaseTimeToLive(
    raft::NodeId to, int64_t id, bool keys, uint64_t min_applied_index,
    std::function<void(absl::StatusOr<peer::LeaseTtlReply>)> done) {
  std::shared_ptr<PeerLink> link = LinkFor(to);
  if (!link || DropsTo(to)) {
    done(absl::UnavailableError("etcdserver: no leader"));
    return;
  }
  auto call = std::make_shared<ForwardedCall<peer::LeaseTtlRequest, peer::LeaseTtlReply>>();
  call->req.set_cluster_id(options_.cluster_id);
  call->req.set_id(id);
  call->req.set_keys(keys);
  call->req.set_min_applied_index(min_applied_index);
  call->ctx.set_deadline(std::chrono::system_clock::now() + kForwardTimeout);
  link->stub->async()->LeaseTimeToLive(&call->ctx, &call->req, &call->reply,
                                       [call, link, done = std::move(done)](grpc::Status s) {
                                         if (!s.ok()) {
                                           done(FromGrpc(s));
                                         } else {
                                           done(std::move(call->reply));
                                         }
                                       });
}

absl::StatusOr<PeerFaultRules> ParsePeerFaultRules(std::string_view query) {
  PeerFaultRules rules;
  for (absl::string_view param :
       absl::StrSplit(absl::string_view(query.data(), query.size()), '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(param, absl::MaxSplits('=', 1));
    std::set<raft::NodeId>* target = kv.first == "drop_to"     ? &rules.drop_to
                                     : kv.first == "drop_from" ? &rules.drop_from
                                                               : nullptr;
    if (target == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown parameter \"", kv.first, "\""));
    }
    for (absl::string_view id : absl::StrSplit(kv.second, ',', absl::SkipEmpty())) {
      uint64_t n = 0;
      if (!absl::SimpleHexAtoi(id, &n) || n == 0) {
        return absl::InvalidArgumentError(absl::StrCat("bad member id \"", id, "\""));
      }
      target->insert(n);
    }
  }
  return rules;
}

std::string FormatPeerFaultRules(const PeerFaultRules& rules) {
  auto hex = [](const std::set<raft::NodeId>& ids) {
    return absl::StrJoin(
        ids, ",", [](std::string* out, raft::NodeId id) { absl::StrAppend(out, absl::Hex(id)); });
  };
  return absl::StrCat("drop_to=", hex(rules.drop_to), "&drop_from=", hex(rules.drop_from));
}

bool Transport::DropsTo(raft::NodeId id) const {
  if (!faults_active_.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> l(fault_mu_);
  return fault_rules_.drop_to.contains(id);
}

bool Transport::DropsFrom(raft::NodeId id) const {
  if (!faults_active_.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> l(fault_mu_);
  return fault_rules_.drop_from.contains(id);
}

void Transport::SetFaultRules(PeerFaultRules rules) {
  std::lock_guard<std::mutex> l(fault_mu_);
  spdlog::warn("event=fault_rules {}", FormatPeerFaultRules(rules));
  faults_active_ = !rules.drop_to.empty() || !rules.drop_from.empty();
  fault_rules_ = std::move(rules);
}

PeerFaultRules Transport::fault_rules() const {
  std::lock_guard<std::mutex> l(fault_mu_);
  return fault_rules_;
}

absl::StatusOr<peer::MembersReply> Transport::FetchMembers(const std::string& url,
                                                           std::chrono::milliseconds timeout) {
  auto parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  auto stub = peer::Peer::NewStub(
      grpc::CreateChannel(parsed->HostPort(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  peer::MembersReply reply;
  grpc::Status s = stub->Members(&ctx, peer::MembersRequest(), &reply);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("members of ", url, ": ", s.error_message()));
  }
  return reply;
}

}  // namespace ganglion::server
