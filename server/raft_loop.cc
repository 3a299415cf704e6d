#include "server/raft_loop.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <limits>

namespace ganglion::server {

namespace {
absl::Status Stopped() {
  return absl::UnavailableError("etcdserver: server stopped");
}
}  // namespace

RaftLoop::RaftLoop(RaftLoopOptions options) : options_(std::move(options)) {}

RaftLoop::~RaftLoop() {
  Stop();
}

absl::Status RaftLoop::Start() {
  if (options_.log_store == nullptr || !options_.send || !options_.on_committed) {
    return absl::InvalidArgumentError("raft loop: log store, send and on_committed are required");
  }
  raft::Config c = options_.raft;
  c.storage = options_.log_store;
  auto node = raft::RawNode::Create(c);
  if (!node.ok()) return node.status();
  node_ = *std::move(node);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-loop");
    Run();
  });
  return absl::OkStatus();
}

void RaftLoop::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Whatever was never executed fails, so no caller waits forever.
  std::vector<Command> left;
  {
    std::lock_guard lock(mu_);
    left.swap(inbox_);
  }
  for (Command& c : left) {
    if (auto* p = std::get_if<ProposeCmd>(&c); p && p->on_done) p->on_done(Stopped());
    if (auto* r = std::get_if<ReadCmd>(&c); r && r->on_done) r->on_done(Stopped());
  }
}

bool RaftLoop::Enqueue(Command c) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || inbox_.size() >= options_.inbox_max) return false;
    inbox_.push_back(std::move(c));
  }
  cv_.notify_one();
  return true;
}

void RaftLoop::Propose(std::string data, std::function<void(absl::Status)> on_done) {
  ProposeCmd cmd{std::move(data), false, on_done};
  if (!Enqueue(std::move(cmd)) && on_done) {
    on_done(absl::ResourceExhaustedError("etcdserver: too many requests"));
  }
}

void RaftLoop::ProposeConfChange(raft::ConfChange cc, std::function<void(absl::Status)> on_done) {
  ProposeCmd cmd{raft::EncodeConfChange(cc), true, on_done};
  if (!Enqueue(std::move(cmd)) && on_done) {
    on_done(absl::ResourceExhaustedError("etcdserver: too many requests"));
  }
}

absl::Status RaftLoop::Step(std::vector<raft::Message> messages) {
  if (!Enqueue(std::move(messages))) {
    return absl::ResourceExhaustedError("raft loop: inbox full");  // Raft retransmits
  }
  return absl::OkStatus();
}

void RaftLoop::ReadIndex(std::string ctx, std::function<void(absl::Status)> on_done) {
  ReadCmd cmd{std::move(ctx), on_done};
  if (!Enqueue(std::move(cmd)) && on_done) {
    on_done(absl::ResourceExhaustedError("etcdserver: too many requests"));
  }
}

void RaftLoop::TransferLeader(raft::NodeId to) {
  Enqueue(TransferCmd{to});
}
void RaftLoop::QueryStatus(std::function<void(const raft::Status&)> fn) {
  Enqueue(StatusCmd{std::move(fn)});
}
void RaftLoop::ReportUnreachable(raft::NodeId id) {
  Enqueue(ReportCmd{id, true, false});
}
void RaftLoop::ReportSnapshot(raft::NodeId id, bool ok) {
  Enqueue(ReportCmd{id, false, ok});
}

raft::SoftState RaftLoop::soft_state() const {
  std::lock_guard lock(mu_);
  return soft_state_;
}

raft::Term RaftLoop::term() const {
  std::lock_guard lock(mu_);
  return term_;
}

void RaftLoop::Execute(Command& c) {
  if (auto* p = std::get_if<ProposeCmd>(&c)) {
    // Only conf changes get here: ExecuteBatch proposes the others.
    auto cc = raft::DecodeConfChange(p->data);
    absl::Status s = cc.ok() ? node_->ProposeConfChange(*cc) : cc.status();
    if (p->on_done) p->on_done(s);
  } else if (auto* msgs = std::get_if<std::vector<raft::Message>>(&c)) {
    for (raft::Message& m : *msgs) {
      // Stale or unknown-peer responses are expected after membership changes.
      (void)node_->Step(std::move(m));
    }
  } else if (auto* r = std::get_if<ReadCmd>(&c)) {
    absl::Status s = node_->ReadIndex(std::move(r->ctx));
    if (r->on_done) r->on_done(s);
  } else if (auto* t = std::get_if<TransferCmd>(&c)) {
    node_->TransferLeader(t->to);
  } else if (auto* q = std::get_if<StatusCmd>(&c)) {
    q->fn(node_->GetStatus());
  } else if (auto* rep = std::get_if<ReportCmd>(&c)) {
    if (rep->unreachable) {
      node_->ReportUnreachable(rep->id);
    } else {
      node_->ReportSnapshot(rep->id, !rep->ok);
    }
  }
}

void RaftLoop::ExecuteBatch(std::vector<Command>& batch) {
  // Consecutive client proposals become one Raft proposal: one append to
  // each follower (and one forward to the leader) for the run instead of
  // one per request. Order with the other commands is kept.
  // A run is capped like an append message (1 MiB, etcd's default), so one
  // refused proposal never refuses more than that.
  constexpr size_t kRunBytesMax = 1 << 20;
  std::vector<std::string> run_data;
  std::vector<std::function<void(absl::Status)>> run_done;
  size_t run_bytes = 0;
  auto flush = [&] {
    if (run_data.empty()) return;
    absl::Status s = node_->ProposeBatch(std::move(run_data));
    for (auto& done : run_done) {
      if (done) done(s);
    }
    run_data.clear();
    run_done.clear();
    run_bytes = 0;
  };
  for (Command& c : batch) {
    if (auto* p = std::get_if<ProposeCmd>(&c); p && !p->conf_change) {
      if (run_bytes + p->data.size() > kRunBytesMax) flush();
      run_bytes += p->data.size();
      run_data.push_back(std::move(p->data));
      run_done.push_back(std::move(p->on_done));
      continue;
    }
    flush();
    Execute(c);
  }
  flush();
}

void RaftLoop::HandleReadies() {
  while (node_->HasReady()) {
    raft::Ready rd = node_->GetReady();
    // Committed entries this member saved in an earlier Ready go to the
    // apply loop first, before this Ready's sends and its write, so they are
    // applied while those run (etcd does the same); the ones in this Ready,
    // and everything after a snapshot, wait until the write is durable.
    // Under load nearly every Ready both commits earlier entries and appends
    // new ones, and without this each put would wait for one more log sync;
    // with one put in flight, it would wait for the leader's sends of the
    // new commit index to its followers.
    size_t saved_before = 0;
    if (!rd.snapshot) {
      const raft::Index first_new =
          rd.entries.empty() ? std::numeric_limits<raft::Index>::max() : rd.entries.front().index;
      while (saved_before < rd.committed_entries.size() &&
             rd.committed_entries[saved_before].index < first_new) {
        saved_before++;
      }
    }
    HandOverCommitted(std::nullopt, rd.committed_entries, 0, saved_before);

    // The leader's appends go out next, so followers write while it does;
    // everything else is durable before it leaves this member.
    std::vector<raft::Message> after_save;
    {
      std::vector<raft::Message> early;
      for (raft::Message& m : rd.messages) {
        (raft::MaySendBeforePersist(m.type) ? early : after_save).push_back(std::move(m));
      }
      rd.messages.clear();
      if (!early.empty()) options_.send(std::move(early));
    }

    const auto save_start = std::chrono::steady_clock::now();
    absl::Status saved = options_.log_store->Save(rd.hard_state, rd.entries, rd.snapshot);
    if (saved.ok() && options_.on_log_saved &&
        (rd.hard_state || !rd.entries.empty() || rd.snapshot)) {
      options_.on_log_saved(std::chrono::steady_clock::now() - save_start);
    }
    if (absl::Status s = saved; !s.ok()) {
      // Continuing could acknowledge what is not on disk: stop the process.
      spdlog::critical("event=raft_log_write_failed error=\"{}\"", s.ToString());
      std::abort();
    }
    if (!after_save.empty()) options_.send(std::move(after_save));

    HandOverCommitted(rd.snapshot, rd.committed_entries, saved_before, rd.committed_entries.size());
    if (!rd.read_states.empty() && options_.on_read_states) {
      options_.on_read_states(std::move(rd.read_states));
    }
    raft::Term term = node_->raft().term();
    if (rd.soft_state) {
      {
        std::lock_guard lock(mu_);
        soft_state_ = *rd.soft_state;
        term_ = term;
      }
      if (options_.on_leader_change) options_.on_leader_change(*rd.soft_state, term);
    } else {
      std::lock_guard lock(mu_);
      term_ = term;
    }
    node_->Advance(rd);
  }
}

void RaftLoop::HandOverCommitted(std::optional<raft::Snapshot> snapshot,
                                 const std::vector<raft::Entry>& entries, size_t begin,
                                 size_t end) {
  if (!snapshot && begin == end) return;
  Committed committed;
  committed.snapshot = std::move(snapshot);
  committed.entries.assign(entries.begin() + static_cast<std::ptrdiff_t>(begin),
                           entries.begin() + static_cast<std::ptrdiff_t>(end));
  for (const raft::Entry& e : committed.entries) {
    if (e.type != raft::EntryType::kConfChange) continue;
    // The configuration takes effect now, in log order, on every member.
    auto cc = raft::DecodeConfChange(e.data);
    absl::StatusOr<raft::ConfState> cs =
        cc.ok() ? node_->ApplyConfChange(*cc) : absl::StatusOr<raft::ConfState>(cc.status());
    committed.conf_changes.emplace_back(e.index, std::move(cs));
  }
  options_.on_committed(std::move(committed));
}

void RaftLoop::Run() {
  using Clock = std::chrono::steady_clock;
  auto next_tick = Clock::now() + options_.tick_interval;
  std::vector<Command> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_tick, [&] { return stopping_ || !inbox_.empty(); });
      if (stopping_) return;
      batch.swap(inbox_);
    }
    ExecuteBatch(batch);
    batch.clear();
    auto now = Clock::now();
    if (now >= next_tick) {
      node_->Tick();
      // After a stall (a slow fsync), resume the rhythm instead of firing a
      // burst of ticks that would expire elections at once.
      next_tick += options_.tick_interval;
      if (next_tick <= now) next_tick = now + options_.tick_interval;
    }
    HandleReadies();
  }
}

}  // namespace ganglion::server
