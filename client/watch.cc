#include "client/watch.h"

#include <condition_variable>
#include <deque>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/ops.h"

namespace ganglion::client {

namespace pb = etcdserverpb;

namespace {
constexpr char kCompactRevisionPayload[] = "type.ganglion.dev/client.compact_revision";
// The watch id etcd gives a progress response that concerns every watcher.
constexpr int64_t kBroadcastWatchId = -1;
// Bound on watchers per stream; beyond it Watch() refuses.
constexpr size_t kWatchersMax = 100000;

absl::Status CompactedError(int64_t compact_revision) {
  absl::Status s = absl::OutOfRangeError(
      absl::StrCat("etcdserver: mvcc: required revision has been compacted (compact revision ",
                   compact_revision, ")"));
  s.SetPayload(kCompactRevisionPayload, absl::Cord(absl::StrCat(compact_revision)));
  return s;
}
}  // namespace

bool IsCompacted(const absl::Status& status) {
  return status.GetPayload(kCompactRevisionPayload).has_value();
}

int64_t CompactRevision(const absl::Status& status) {
  auto payload = status.GetPayload(kCompactRevisionPayload);
  int64_t rev = 0;
  if (payload.has_value() && absl::SimpleAtoi(std::string(*payload), &rev)) return rev;
  return 0;
}

// One watcher's state, shared by its Watcher and the stream. Every field but
// `create` is guarded by the stream's mutex.
struct WatcherState : std::enable_shared_from_this<WatcherState> {
  pb::WatchCreateRequest create;  // immutable; start_revision is set per (re-)create
  size_t queue_max = 0;           // immutable
  int64_t next_rev = 0;           // 0 until the first create is confirmed, if it started "now"
  int64_t watch_id = -1;          // the server's id on the current stream; -1 if none
  int64_t sent_start_rev = 0;     // start_revision of the create in flight or in force
  // The stream's revision when the current create was confirmed, if the watch
  // started at or before it (it then replays history up to there); else 0.
  int64_t catch_up_to_rev = 0;
  bool created_once = false;  // the first create was confirmed (Watch() returns)
  bool pending = false;       // a create was sent and not yet answered
  bool paused = false;        // cancelled server-side because the queue is full
  bool done = false;          // cancelled by the user or failed: never re-created
  std::deque<absl::StatusOr<WatchBatch>> queue;  // at most queue_max + 1 (the final error)
  std::condition_variable cv;
};

// The shared stream and its reader thread.
class WatchStream {
 public:
  explicit WatchStream(std::shared_ptr<EndpointSet> endpoints)
      : endpoints_(std::move(endpoints)), reader_([this] { ReadLoop(); }) {}
  ~WatchStream() { Shutdown(); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
      if (context_ != nullptr) context_->TryCancel();
      for (const auto& w : watchers_) Fail(*w, absl::CancelledError("client: watch client closed"));
    }
    cv_.notify_all();
    reader_.join();
  }

  absl::Status Add(const std::shared_ptr<WatcherState>& w) {
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) return absl::CancelledError("client: watch client closed");
    if (watchers_.size() >= kWatchersMax) {
      return absl::ResourceExhaustedError("client: too many watchers on one stream");
    }
    watchers_.insert(w);
    SendCreate(w);
    const absl::Time deadline =
        absl::Now() + absl::FromChrono(endpoints_->config().request_timeout);
    while (!w->created_once && !w->done) {
      if (w->cv.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout) break;
    }
    if (w->created_once) return absl::OkStatus();
    absl::Status why = w->done && !w->queue.empty() && !w->queue.back().ok()
                           ? w->queue.back().status()
                           : absl::DeadlineExceededError("client: watch was not created in time");
    CancelLocked(*w);
    return why;
  }

  absl::StatusOr<WatchBatch> Next(WatcherState& w, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    const absl::Time deadline = absl::Now() + timeout;
    while (w.queue.empty()) {
      if (w.cv.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout &&
          w.queue.empty()) {
        return absl::DeadlineExceededError("client: no watch response in time");
      }
    }
    absl::StatusOr<WatchBatch> front = w.queue.front();
    if (!front.ok()) return front.status();  // the final error stays for later calls
    w.queue.pop_front();
    // Resume a paused watcher once half its queue has drained.
    if (w.paused && !w.done && w.queue.size() <= w.queue_max / 2) {
      w.paused = false;
      SendCreate(w.shared_from_this());
    }
    return front;
  }

  void Cancel(WatcherState& w) {
    std::lock_guard<std::mutex> lock(mu_);
    CancelLocked(w);
  }

  int64_t NextRevision(const WatcherState& w) {
    std::lock_guard<std::mutex> lock(mu_);
    return w.next_rev;
  }

  absl::Status RequestProgress() {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_ == nullptr) return absl::UnavailableError("client: watch stream is reconnecting");
    pb::WatchRequest req;
    req.mutable_progress_request();
    if (!stream_->Write(req)) return absl::UnavailableError("client: watch stream broke");
    return absl::OkStatus();
  }

 private:
  using Stream = grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>;

  // Requires mu_. Sends w's create from its next revision, if a stream is up
  // (otherwise the reconnect sends it).
  void SendCreate(const std::shared_ptr<WatcherState>& w) {
    if (stream_ == nullptr || w->done || w->paused) return;
    pb::WatchRequest req;
    *req.mutable_create_request() = w->create;
    req.mutable_create_request()->set_start_revision(w->next_rev);
    w->sent_start_rev = w->next_rev;
    w->pending = true;
    w->watch_id = -1;
    pending_.push_back(w);
    stream_->Write(req);  // a failed write shows up as a failed read
  }

  // Requires mu_. Stops the server-side watch; events still in flight for it
  // are dropped because its id is forgotten here.
  void CancelServerSide(WatcherState& w) {
    if (w.watch_id < 0) return;
    ids_.erase(w.watch_id);
    if (stream_ != nullptr) {
      pb::WatchRequest req;
      req.mutable_cancel_request()->set_watch_id(w.watch_id);
      stream_->Write(req);
    }
    w.watch_id = -1;
  }

  // Requires mu_. Ends w with `why` as its final queue entry.
  void Fail(WatcherState& w, absl::Status why) {
    if (w.done) return;
    w.done = true;
    w.queue.push_back(std::move(why));
    w.cv.notify_all();
  }

  void CancelLocked(WatcherState& w) {
    CancelServerSide(w);
    Fail(w, absl::CancelledError("client: watcher cancelled"));
    watchers_.erase(w.shared_from_this());
  }

  void ReadLoop() {
    int failures = 0;
    while (true) {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) return;
      const int i = endpoints_->Pick(absl::Now());
      context_ = std::make_unique<grpc::ClientContext>();
      // A member cut off from its leader closes the stream instead of
      // serving a watch that silently stops.
      AddRequireLeader(context_.get());
      std::shared_ptr<Stream> stream = endpoints_->stubs(i).watch->Watch(context_.get());
      stream_ = stream;
      pending_.clear();
      ids_.clear();
      for (const auto& w : watchers_) SendCreate(w);  // paused ones wait for Next()
      lock.unlock();

      pb::WatchResponse resp;
      while (stream->Read(&resp)) {
        failures = 0;
        Handle(resp);
      }

      lock.lock();
      stream_ = nullptr;  // writers hold mu_, so none is in progress
      std::unique_ptr<grpc::ClientContext> context = std::move(context_);
      const bool stopping = stop_;
      lock.unlock();
      context->TryCancel();
      stream->Finish();
      stream.reset();  // a call must end before its context: the context dies last
      if (stopping) return;
      endpoints_->MarkUnhealthy(i, absl::Now());
      ++failures;
      lock.lock();
      cv_.wait_for(lock, absl::ToChronoNanoseconds(RetryPause(std::min(failures, 5))),
                   [this] { return stop_; });
    }
  }

  void Handle(const pb::WatchResponse& resp) {
    std::lock_guard<std::mutex> lock(mu_);
    if (resp.created()) {
      if (pending_.empty()) return;  // not ours: nothing was asked
      std::shared_ptr<WatcherState> w = pending_.front();
      pending_.pop_front();
      w->pending = false;
      if (resp.canceled()) {  // refused at creation
        Fail(*w, resp.compact_revision() > 0 ? CompactedError(resp.compact_revision())
                                             : absl::InvalidArgumentError(resp.cancel_reason()));
        return;
      }
      if (w->done || w->paused) {  // cancelled or paused while the create was in flight
        w->watch_id = resp.watch_id();
        CancelServerSide(*w);
        return;
      }
      w->watch_id = resp.watch_id();
      ids_[resp.watch_id()] = w;
      w->catch_up_to_rev = w->sent_start_rev != 0 && w->sent_start_rev <= resp.header().revision()
                               ? resp.header().revision()
                               : 0;
      if (w->next_rev == 0) w->next_rev = resp.header().revision() + 1;
      w->created_once = true;
      w->cv.notify_all();
      return;
    }
    if (resp.watch_id() == kBroadcastWatchId && resp.events().empty()) {
      // etcd 3.4 answers a progress request at once, even while a watcher is
      // still replaying history; its revision is then not yet true for that
      // watcher. Only watchers known to have caught up get it.
      for (auto& [id, w] : ids_) {
        if (w->next_rev > w->catch_up_to_rev) Deliver(*w, resp);
      }
      return;
    }
    auto it = ids_.find(resp.watch_id());
    if (it == ids_.end()) return;  // a cancelled or paused watch's leftovers
    std::shared_ptr<WatcherState> w = it->second;
    if (resp.canceled()) {
      ids_.erase(it);
      w->watch_id = -1;
      Fail(*w, resp.compact_revision() > 0
                   ? CompactedError(resp.compact_revision())
                   : absl::AbortedError(absl::StrCat("client: watch cancelled by the server: ",
                                                     resp.cancel_reason())));
      return;
    }
    if (resp.compact_revision() > 0) {
      CancelServerSide(*w);
      Fail(*w, CompactedError(resp.compact_revision()));
      return;
    }
    Deliver(*w, resp);
  }

  // Requires mu_.
  void Deliver(WatcherState& w, const pb::WatchResponse& resp) {
    if (w.done || w.paused) return;
    WatchBatch batch;
    batch.revision = resp.header().revision();
    batch.progress_notify = resp.events().empty();
    batch.events.assign(resp.events().begin(), resp.events().end());
    if (!batch.events.empty()) {
      const int64_t last = batch.events.back().kv().mod_revision();
      // A re-created watch may resend what was already delivered only if the
      // server ignored start_revision; drop such events rather than repeat.
      if (last < w.next_rev) return;
      w.next_rev = last + 1;
    }
    w.queue.push_back(std::move(batch));
    w.cv.notify_all();
    if (w.queue.size() >= w.queue_max) {
      // Back-pressure: stop the server-side watch; Next() re-creates it from
      // next_rev once the consumer has caught up.
      CancelServerSide(w);
      w.paused = true;
    }
  }

  const std::shared_ptr<EndpointSet> endpoints_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::shared_ptr<WatcherState>> watchers_;  // guarded by mu_; at most kWatchersMax
  // Creates sent and not answered, in send order: the server answers them in
  // that order. Guarded by mu_; at most watchers_.size().
  std::deque<std::shared_ptr<WatcherState>> pending_;
  std::unordered_map<int64_t, std::shared_ptr<WatcherState>> ids_;  // guarded by mu_
  std::shared_ptr<Stream> stream_;                                  // guarded by mu_
  std::unique_ptr<grpc::ClientContext> context_;                    // guarded by mu_
  bool stop_ = false;                                               // guarded by mu_
  std::thread reader_;  // last: starts after every field above exists
};

Watcher::Watcher(std::shared_ptr<WatchStream> stream, std::shared_ptr<WatcherState> state)
    : stream_(std::move(stream)), state_(std::move(state)) {}

Watcher::~Watcher() {
  Cancel();
}

absl::StatusOr<WatchBatch> Watcher::Next(absl::Duration timeout) {
  return stream_->Next(*state_, timeout);
}

void Watcher::Cancel() {
  stream_->Cancel(*state_);
}

int64_t Watcher::next_revision() const {
  return stream_->NextRevision(*state_);
}

WatchClient::WatchClient(std::shared_ptr<EndpointSet> endpoints)
    : endpoints_(std::move(endpoints)) {}

WatchClient::~WatchClient() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stream_ != nullptr) stream_->Shutdown();
}

absl::StatusOr<std::unique_ptr<Watcher>> WatchClient::Watch(std::string_view key,
                                                            const WatchOptions& options) {
  auto state = std::make_shared<WatcherState>();
  pb::WatchCreateRequest& c = state->create;
  c.set_key(std::string(key));
  if (options.prefix) {
    c.set_range_end(PrefixEnd(key));
  } else if (options.from_key) {
    c.set_range_end(std::string(1, '\0'));
  } else {
    c.set_range_end(options.range_end);
  }
  c.set_prev_kv(options.prev_kv);
  c.set_progress_notify(options.progress_notify);
  if (options.no_put) c.add_filters(pb::WatchCreateRequest::NOPUT);
  if (options.no_delete) c.add_filters(pb::WatchCreateRequest::NODELETE);
  state->queue_max = std::max<size_t>(options.queue_responses_max, 2);
  state->next_rev = options.start_revision;
  std::shared_ptr<WatchStream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_ == nullptr) stream_ = std::make_shared<WatchStream>(endpoints_);
    stream = stream_;
  }
  absl::Status added = stream->Add(state);
  if (!added.ok()) return added;
  return std::make_unique<Watcher>(std::move(stream), std::move(state));
}

absl::Status WatchClient::RequestProgress() {
  std::shared_ptr<WatchStream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_ == nullptr) stream_ = std::make_shared<WatchStream>(endpoints_);
    stream = stream_;
  }
  return stream->RequestProgress();
}

}  // namespace ganglion::client
