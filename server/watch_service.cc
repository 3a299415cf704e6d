// etcdserverpb.Watch: one bidirectional stream per client. Requests go to the
// member's watch::Hub; the hub queues the responses (bounded per stream) and
// each stream writes them one at a time, filling each header's member fields.
// See watch_service.h for why this service runs on the async API.
#include "server/watch_service.h"

#include <pthread.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "server/errors.h"
#include "server/services.h"
#include "watch/hub.h"

namespace ganglion::server {

// One Watch stream, from the request for it to its end. Every operation in
// flight has a completion-queue tag: the call's address with the operation
// in its two low bits. The call deletes itself once its Finish and its last
// read and write have completed.
class WatchCall {
 public:
  enum class Op : uintptr_t { kAccept = 0, kRead = 1, kWrite = 2, kFinish = 3 };

  // Asks gRPC for the next Watch call.
  explicit WatchCall(WatchService* owner) : owner_(owner), stream_(&ctx_) {
    owner_->CallCreated();
    owner_->service_.RequestWatch(&ctx_, &stream_, owner_->cq_.get(), owner_->cq_.get(),
                                  Tag(Op::kAccept));
  }
  ~WatchCall() { owner_->CallDeleted(); }

  // A completion-queue event.
  static void Dispatch(void* tag, bool ok) {
    const auto bits = reinterpret_cast<uintptr_t>(tag);
    auto* call = reinterpret_cast<WatchCall*>(bits & ~uintptr_t{3});
    switch (static_cast<Op>(bits & 3)) {
      case Op::kAccept:
        call->OnAccept(ok);
        break;
      case Op::kRead:
        call->OnRead(ok);
        break;
      case Op::kWrite:
        call->OnWriteDone(ok);
        break;
      case Op::kFinish:
        call->OnFinishDone();
        break;
    }
  }

  // Ends the stream with `status` (e.g. the leader was lost). Idempotent.
  void Shutdown(const grpc::Status& status) {
    std::lock_guard lock(mu_);
    FinishLocked(status);
  }
  bool require_leader() const { return require_leader_; }

 private:
  void* Tag(Op op) {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(this) | static_cast<uintptr_t>(op));
  }

  void OnAccept(bool ok) {
    if (!ok) {  // the server is shutting down: no call came
      delete this;
      return;
    }
    new WatchCall(owner_);  // requests the next call in this one's place
    Server* server = owner_->server_;
    require_leader_ = RequiresLeader(&ctx_);
    absl::Status admitted = require_leader_ && !server->HasLeader() ? NoLeader() : absl::OkStatus();
    // As etcd: a learner serves no streams but snapshots.
    if (admitted.ok() && server->IsLearner()) {
      admitted = absl::UnavailableError(kErrNotSupportedForLearner);
    }
    hub_ = server->watch_hub();
    if (admitted.ok() && hub_ == nullptr) admitted = absl::UnavailableError(kErrStopped);
    owner_->Register(this);
    if (admitted.ok()) {
      // The hub calls on_ready under its own lock; after CloseStream, never.
      auto ref = hub_->OpenStream([this] { WriteNext(); });
      if (ref.ok()) {
        hub_stream_ = *std::move(ref);
        opened_ = true;
      } else {
        admitted = ref.status();
      }
    }
    bool done = false;
    {
      std::lock_guard lock(mu_);
      accepted_ = true;
      if (!admitted.ok()) FinishLocked(ToGrpc(admitted));
      if (!finishing_ && !finish_pending_) {
        reading_ = true;
        stream_.Read(&request_, Tag(Op::kRead));
        return;
      }
      // Refused, or already ended by the monitor (registered above).
      done = DoneLocked();
    }
    if (done) Release();
  }

  void OnRead(bool ok) {
    if (ok) {
      Handle(request_);
      // An idle stream keeps no request: Clear frees the create request's
      // message and strings.
      request_.Clear();
    }
    bool done = false;
    {
      std::lock_guard lock(mu_);
      if (!ok) {
        // The client closed its side (or the call was canceled): end the stream.
        FinishLocked(grpc::Status::OK);
      }
      if (ok && !finishing_ && !finish_pending_) {
        stream_.Read(&request_, Tag(Op::kRead));
        return;
      }
      reading_ = false;
      done = DoneLocked();
    }
    if (done) Release();
  }

  void Handle(const etcdserverpb::WatchRequest& req) {
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
        s = hub_->Create(hub_stream_.id, spec);
        break;
      }
      case etcdserverpb::WatchRequest::kCancelRequest:
        s = hub_->Cancel(hub_stream_.id, req.cancel_request().watch_id());
        break;
      case etcdserverpb::WatchRequest::kProgressRequest:
        s = hub_->RequestProgress(hub_stream_.id);
        break;
      default:
        break;  // an empty request: etcd ignores it too
    }
    if (!s.ok()) Shutdown(ToGrpc(s));
  }

  // Starts the next write if none is in flight and the queue has one. From
  // the hub's thread (on_ready) and from OnWriteDone.
  void WriteNext() {
    std::lock_guard lock(mu_);
    if (writing_ || finishing_ || finish_pending_) return;
    etcdserverpb::WatchResponse resp;
    if (!hub_stream_.queue->Pop(&resp)) return;  // on_ready calls again
    owner_->server_->FillHeader(resp.mutable_header(), resp.header().revision());
    writing_ = true;
    // Write serializes at once, so an idle stream keeps nothing of its last
    // response (which may hold large values).
    stream_.Write(resp, Tag(Op::kWrite));
  }

  void OnWriteDone(bool ok) {
    bool done = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (finish_pending_) {
        finish_pending_ = false;
        StartFinishLocked(*finish_status_);
        finish_status_.reset();
      } else if (!ok) {
        // The client is gone; the read in flight fails too.
        StartFinishLocked(grpc::Status::CANCELLED);
      }
      done = DoneLocked();
    }
    if (done) {
      Release();
      return;
    }
    WriteNext();
  }

  void OnFinishDone() {
    bool done = false;
    {
      std::lock_guard lock(mu_);
      finished_ = true;
      done = DoneLocked();
    }
    if (done) Release();
  }

  // Finishes now, or once the write in flight completes (a Finish may not
  // overlap a write).
  void FinishLocked(const grpc::Status& status) {
    if (finishing_ || finish_pending_) return;
    if (writing_) {
      finish_pending_ = true;
      finish_status_ = std::make_unique<grpc::Status>(status);
      return;
    }
    StartFinishLocked(status);
  }
  void StartFinishLocked(const grpc::Status& status) {
    finishing_ = true;
    stream_.Finish(status, Tag(Op::kFinish));
  }
  // Nothing in flight any more and OnAccept is through: the call may go. A
  // read in flight completes (failing) once the call is finished. Exactly
  // one event sees this turn true, and that one releases the call.
  bool DoneLocked() const { return accepted_ && finished_ && !reading_ && !writing_; }

  void Release() {
    owner_->Unregister(this);
    // After CloseStream the hub never calls WriteNext again.
    if (opened_) hub_->CloseStream(hub_stream_.id);
    delete this;
  }

  WatchService* const owner_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<etcdserverpb::WatchResponse, etcdserverpb::WatchRequest> stream_;
  etcdserverpb::WatchRequest request_;  // the read in flight's (one at a time)
  watch::Hub* hub_ = nullptr;           // set once in OnAccept
  watch::Hub::StreamRef hub_stream_;    // set once in OnAccept
  bool opened_ = false;                 // set once in OnAccept
  bool require_leader_ = false;         // set once in OnAccept

  // Guards the operations' state: events come from the queue's threads and
  // the hub's thread (WriteNext). Lock order: the hub's locks -> mu_ -> the
  // hub queue's lock (Pop).
  std::mutex mu_;
  bool accepted_ = false;                        // OnAccept is through
  bool reading_ = false;                         // a read is in flight
  bool writing_ = false;                         // a write is in flight
  bool finish_pending_ = false;                  // Finish once the write ends...
  std::unique_ptr<grpc::Status> finish_status_;  // ...with this status
  bool finishing_ = false;                       // Finish called
  bool finished_ = false;                        // Finish completed
};

static_assert(alignof(WatchCall) >= 4, "a tag keeps the operation in two low bits");

WatchService::WatchService(Server* server) : server_(server) {
  monitor_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "watch-monitor");
    MonitorLoop();
  });
}

WatchService::~WatchService() {
  Stop();
  {
    std::lock_guard lock(mu_);
    stop_monitor_ = true;
  }
  cv_.notify_all();
  monitor_.join();
}

void WatchService::AddTo(grpc::ServerBuilder* builder) {
  builder->RegisterService(&service_);
  cq_ = builder->AddCompletionQueue();
}

void WatchService::Start() {
  for (int i = 0; i < kRequestsAhead; ++i) new WatchCall(this);
  for (int i = 0; i < kThreads; ++i) {
    pollers_.emplace_back([this, i] {
      pthread_setname_np(pthread_self(), ("watch-cq-" + std::to_string(i)).c_str());
      Poll();
    });
  }
}

void WatchService::Stop() {
  if (stopped_ || cq_ == nullptr) return;
  stopped_ = true;
  // No call may start an operation once the queue is shut down, and a call
  // still starts one (Finish) when its read fails. The grpc::Server's
  // Shutdown has canceled every call and fails every pending request, so
  // each WatchCall ends and deletes itself; the queue goes down after the last.
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return live_calls_ == 0; });
  }
  cq_->Shutdown();
  if (pollers_.empty()) Poll();  // never started: drain here
  for (auto& t : pollers_) t.join();
}

void WatchService::Poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) WatchCall::Dispatch(tag, ok);
}

void WatchService::CallCreated() {
  std::lock_guard lock(mu_);
  live_calls_++;
}

void WatchService::CallDeleted() {
  std::lock_guard lock(mu_);
  if (--live_calls_ == 0) cv_.notify_all();
}

void WatchService::Register(WatchCall* call) {
  std::lock_guard lock(mu_);
  calls_.insert(call);
}

void WatchService::Unregister(WatchCall* call) {
  std::lock_guard lock(mu_);
  calls_.erase(call);
}

void WatchService::MonitorLoop() {
  const auto period = std::chrono::milliseconds(server_->config().election_timeout_ms);
  uint64_t events_reported = 0;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period, [&] { return stop_monitor_; })) {
    if (!server_->HasLeader()) {
      // Calls unregister (under mu_) before they are deleted, so every
      // pointer here is live.
      for (WatchCall* c : calls_) {
        if (c->require_leader()) c->Shutdown(ToGrpc(NoLeader()));
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

}  // namespace ganglion::server
