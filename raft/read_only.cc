#include "raft/read_only.h"

namespace ganglion::raft {

void ReadOnly::AddRequest(Index index, const Message& m) {
  const std::string& ctx = m.context;
  if (pending_.count(ctx)) return;
  pending_.emplace(ctx, Status{m, index, {}});
  queue_.push_back(ctx);
}

const std::set<NodeId>* ReadOnly::RecvAck(NodeId id, const std::string& ctx) {
  auto it = pending_.find(ctx);
  if (it == pending_.end()) return nullptr;
  it->second.acks.insert(id);
  return &it->second.acks;
}

std::vector<ReadOnly::Status> ReadOnly::Advance(const std::string& ctx) {
  size_t n = 0;
  bool found = false;
  for (const auto& c : queue_) {
    n++;
    if (c == ctx) {
      found = true;
      break;
    }
  }
  std::vector<Status> out;
  if (!found) return out;
  for (size_t i = 0; i < n; i++) {
    auto it = pending_.find(queue_.front());
    out.push_back(std::move(it->second));
    pending_.erase(it);
    queue_.pop_front();
  }
  return out;
}

std::string ReadOnly::LastPendingRequestCtx() const {
  return queue_.empty() ? std::string() : queue_.back();
}

}  // namespace ganglion::raft
