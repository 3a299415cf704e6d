// etcdserverpb.Watch: one bidirectional stream per client, on gRPC's callback
// API. Requests go to the member's watch::Hub; the hub queues the responses
// (bounded per stream) and this reactor writes them one at a time, filling
// each header's member fields.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "server/errors.h"
#include "server/services.h"
#include "watch/hub.h"

namespace ganglion::server {
namespace {

class WatchService;

class WatchReactor final
    : public grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse> {
 public:
  WatchReactor(WatchService* service, Server* server, bool require_leader);
  // Opens the hub stream and starts reading; finishes at once on refusal.
  void Begin(absl::Status admitted);
  // Ends the stream with `status` (e.g. the leader was lost). Idempotent.
  void Shutdown(const grpc::Status& status);
  bool require_leader() const { return require_leader_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  void Handle(const etcdserverpb::WatchRequest& req);
  // Starts the next write if none is in flight and the queue has one.
  void WriteNext();

  WatchService* const service_;
  Server* const server_;
  const bool require_leader_;
  watch::Hub* const hub_;
  watch::Hub::StreamRef stream_;  // set once in Begin
  bool opened_ = false;           // set once in Begin

  etcdserverpb::WatchRequest request_;  // owned by the read in flight (one at a time)

  // Guards the write state and Finish: writes come from the hub's thread
  // (on_ready), from OnWriteDone and from OnReadDone. Lock order: the hub's
  // locks -> mu_ -> the hub queue's lock (Pop).
  std::mutex mu_;
  etcdserverpb::WatchResponse response_;  // guarded by mu_; the write in flight
  bool writing_ = false;                  // guarded by mu_
  bool finished_ = false;                 // guarded by mu_
  bool finish_pending_ = false;           // guarded by mu_: Finish once the write ends
  grpc::Status finish_status_;            // guarded by mu_
};

class WatchService final : public etcdserverpb::Watch::CallbackService {
 public:
  explicit WatchService(Server* server) : server_(server) {
    monitor_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "watch-monitor");
      MonitorLoop();
    });
  }
  ~WatchService() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    monitor_.join();
  }

  grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override {
    const auto& md = ctx->client_metadata();
    auto it = md.find("hasleader");
    const bool require_leader = it != md.end() && it->second == "true";
    auto* reactor = new WatchReactor(this, server_, require_leader);
    absl::Status admitted = CheckRequireLeader(ctx, *server_);
    // As etcd: a learner serves no streams but snapshots.
    if (admitted.ok() && server_->IsLearner()) {
      admitted = absl::UnavailableError(kErrNotSupportedForLearner);
    }
    if (admitted.ok()) Register(reactor);
    reactor->Begin(admitted);
    return reactor;
  }

  void Unregister(WatchReactor* r) {
    std::lock_guard lock(mu_);
    reactors_.erase(r);
  }

 private:
  void Register(WatchReactor* r) {
    std::lock_guard lock(mu_);
    reactors_.insert(r);
  }

  // Every election timeout: streams that asked for a leader end with "no
  // leader" when the member has none (as etcd), and the hub's counters go
  // to the member's metrics.
  void MonitorLoop() {
    const auto period = std::chrono::milliseconds(server_->config().election_timeout_ms);
    uint64_t events_reported = 0;
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, period, [&] { return stop_; })) {
      if (!server_->HasLeader()) {
        // Reactors unregister (under mu_) before they are deleted, so every
        // pointer here is live.
        for (WatchReactor* r : reactors_) {
          if (r->require_leader()) r->Shutdown(ToGrpc(NoLeader()));
        }
      }
      if (watch::Hub* hub = server_->watch_hub()) {
        watch::HubStats st = hub->Stats();
        ServerMetrics& m = server_->metrics();
        m.mvcc_watch_stream_total->Set(static_cast<double>(st.streams));
        m.mvcc_watcher_total->Set(static_cast<double>(st.watchers));
        m.mvcc_slow_watcher_total->Set(static_cast<double>(st.slow_watchers));
        m.mvcc_events_total->Add(st.events_sent_total - events_reported);
        events_reported = st.events_sent_total;
      }
    }
  }

  Server* const server_;
  std::mutex mu_;
  std::condition_variable cv_;        // with mu_
  std::set<WatchReactor*> reactors_;  // guarded by mu_; bounded by the hub's streams_max
  bool stop_ = false;                 // guarded by mu_
  std::thread monitor_;
};

WatchReactor::WatchReactor(WatchService* service, Server* server, bool require_leader)
    : service_(service),
      server_(server),
      require_leader_(require_leader),
      hub_(server->watch_hub()) {}

void WatchReactor::Begin(absl::Status admitted) {
  if (admitted.ok() && hub_ == nullptr) admitted = absl::UnavailableError(kErrStopped);
  if (admitted.ok()) {
    auto ref = hub_->OpenStream([this] { WriteNext(); });
    if (ref.ok()) {
      stream_ = *ref;
      opened_ = true;
    } else {
      admitted = ref.status();
    }
  }
  if (!admitted.ok()) {
    Shutdown(ToGrpc(admitted));
    return;
  }
  StartRead(&request_);
}

void WatchReactor::Shutdown(const grpc::Status& status) {
  std::lock_guard lock(mu_);
  if (finished_ || finish_pending_) return;
  if (writing_) {
    finish_pending_ = true;
    finish_status_ = status;
    return;
  }
  finished_ = true;
  Finish(status);
}

void WatchReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The client closed its side (or the call was canceled): end the stream.
    Shutdown(grpc::Status::OK);
    return;
  }
  Handle(request_);
  // An idle stream keeps no request: Clear frees the create request's
  // message and strings.
  request_.Clear();
  {
    std::lock_guard lock(mu_);
    if (finished_ || finish_pending_) return;
  }
  StartRead(&request_);
}

void WatchReactor::Handle(const etcdserverpb::WatchRequest& req) {
  absl::Status s;
  switch (req.request_union_case()) {
    case etcdserverpb::WatchRequest::kCreateRequest: {
      const auto& c = req.create_request();
      watch::WatchSpec spec;
      spec.key = c.key();
      spec.range_end = c.range_end();
      spec.start_revision = c.start_revision();
      spec.watch_id = c.watch_id();
      spec.progress_notify = c.progress_notify();
      spec.prev_kv = c.prev_kv();
      spec.fragment = c.fragment();
      for (int f : c.filters()) {
        if (f == etcdserverpb::WatchCreateRequest::NOPUT) spec.filter_put = true;
        if (f == etcdserverpb::WatchCreateRequest::NODELETE) spec.filter_delete = true;
      }
      s = hub_->Create(stream_.id, spec);
      break;
    }
    case etcdserverpb::WatchRequest::kCancelRequest:
      s = hub_->Cancel(stream_.id, req.cancel_request().watch_id());
      break;
    case etcdserverpb::WatchRequest::kProgressRequest:
      s = hub_->RequestProgress(stream_.id);
      break;
    default:
      break;  // an empty request: etcd ignores it too
  }
  if (!s.ok()) Shutdown(ToGrpc(s));
}

void WatchReactor::WriteNext() {
  std::lock_guard lock(mu_);
  if (writing_ || finished_ || finish_pending_) return;
  if (!stream_.queue->Pop(&response_)) return;  // on_ready calls again
  server_->FillHeader(response_.mutable_header(), response_.header().revision());
  writing_ = true;
  StartWrite(&response_);
}

void WatchReactor::OnWriteDone(bool ok) {
  {
    std::lock_guard lock(mu_);
    writing_ = false;
    // An idle stream keeps nothing of its last response (which may hold
    // large values): assigning a fresh message frees it, where Clear would
    // keep the events' storage for reuse.
    response_ = etcdserverpb::WatchResponse();
    if (finish_pending_) {
      finish_pending_ = false;
      finished_ = true;
      Finish(finish_status_);
      return;
    }
    if (!ok) {
      // The client is gone; OnReadDone(false) follows and finishes.
      finished_ = true;
      Finish(grpc::Status::CANCELLED);
      return;
    }
  }
  WriteNext();
}

void WatchReactor::OnDone() {
  service_->Unregister(this);
  // After CloseStream the hub never calls WriteNext again.
  if (opened_) hub_->CloseStream(stream_.id);
  delete this;
}

}  // namespace

std::unique_ptr<grpc::Service> MakeWatchService(Server* server) {
  return std::make_unique<WatchService>(server);
}

}  // namespace ganglion::server
