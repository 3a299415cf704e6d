// The ObjectStore over the etcd v3 API (ganglion::client), talking to a
// member's client URL, so the API server's writes take the same Raft proposal
// path as any etcd client's. One etcd watch over the whole root prefix feeds
// every subscription (no watch, no thread per HTTP watcher); a bounded window
// of recent events lets a subscriber start a little in the past, as a watch
// from a list's revision needs. It must never deliver an event twice or out of
// order to a subscriber, nor pretend to have history it dropped: a start
// revision older than the window is OutOfRange.
#pragma once

#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "client/client.h"
#include "orchestrator/storage/object_store.h"

namespace ganglion::orchestrator {

struct EtcdObjectStoreOptions {
  std::vector<std::string> endpoints;  // "host:port"
  // Instead of dialing `endpoints`: a channel into this process's own member
  // (see ClientConfig::channel); `endpoints` then holds its name.
  std::shared_ptr<grpc::Channel> channel;
  std::string root_prefix = "/registry/";
  // Events kept for subscribers that start in the past.
  size_t history_events_max = 20000;
  // How far before the current revision the shared watch starts when it is
  // (re-)established, so the window also covers writes made just before.
  int64_t backfill_revisions = 10000;
  // Quiet period after which the store asks etcd for a progress notification,
  // so watched_revision() (bookmarks) keeps up with writes outside the prefix.
  absl::Duration progress_interval = absl::Seconds(5);
};

class EtcdObjectStore : public ObjectStore {
 public:
  // Creates the client and starts the watch thread; does not wait for the
  // member: until the first watch is established, Watch() is Unavailable.
  static absl::StatusOr<std::unique_ptr<EtcdObjectStore>> Create(EtcdObjectStoreOptions options);
  ~EtcdObjectStore() override;

  absl::StatusOr<StoredObject> Get(std::string_view key) override;
  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view start_key, int64_t limit,
                                int64_t revision) override;
  absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value) override;
  absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value,
                                 int64_t expected_mod_revision) override;
  absl::StatusOr<int64_t> Delete(std::string_view key, int64_t expected_mod_revision) override;
  absl::StatusOr<std::unique_ptr<Subscription>> Watch(std::string_view prefix,
                                                      int64_t after_revision, EventSink on_events,
                                                      EndSink on_end) override;
  int64_t watched_revision() const override;

  // Waits until the shared watch is established (tests, start-up ordering).
  bool WaitReady(absl::Duration timeout);
  client::Client& client() { return *client_; }

 private:
  struct Subscriber {
    std::string prefix;
    int64_t after_revision = 0;
    EventSink on_events;
    EndSink on_end;
    bool ended = false;  // on_end ran; nothing more is delivered
  };
  // The subscriber list, shared with the subscriptions so one that outlives
  // the store cancels harmlessly.
  struct Hub {
    std::mutex mu;
    std::list<Subscriber> subscribers;  // guarded by mu
  };
  class SubscriptionImpl;

  EtcdObjectStore(EtcdObjectStoreOptions options, std::unique_ptr<client::Client> client);
  void Run();  // the watch thread
  // Opens the shared watch at the current revision; resets the window.
  absl::StatusOr<std::unique_ptr<client::Watcher>> OpenWatch();
  void Deliver(const client::WatchBatch& batch);
  void EndAll(const absl::Status& why);

  const EtcdObjectStoreOptions options_;
  std::unique_ptr<client::Client> client_;

  mutable std::mutex mu_;
  std::condition_variable ready_cv_;
  bool ready_ = false;                  // guarded by mu_
  bool stop_ = false;                   // guarded by mu_
  int64_t history_floor_revision_ = 0;  // guarded by mu_; every event after it is in history_
  int64_t watched_revision_ = 0;        // guarded by mu_
  std::deque<ObjectEvent> history_;     // guarded by mu_; bounded by history_events_max
  // Lock order: mu_, then hub_->mu. Sinks run under both.
  std::shared_ptr<Hub> hub_ = std::make_shared<Hub>();

  std::thread thread_;
};

}  // namespace ganglion::orchestrator
