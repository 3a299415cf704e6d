#include "raft/sim/network.h"

namespace ganglion::raft::sim {

int Network::Send(const Message& m, uint64_t sender_incarnation, uint64_t now_tick, Rng& rng) {
  if (Blocked(m.from, m.to) || rng.Chance(faults_.drop_per_mille)) {
    dropped++;
    return 0;
  }
  int copies = 1;
  if (rng.Chance(faults_.duplicate_per_mille)) {
    copies = 2;
    duplicated++;
  }
  for (int i = 0; i < copies; i++) {
    uint64_t span = faults_.delay_max_ticks - faults_.delay_min_ticks + 1;
    uint64_t at = now_tick + faults_.delay_min_ticks + rng.Below(span);
    queue_.emplace(std::make_pair(at, next_seq_++), InFlight{m, sender_incarnation});
  }
  return copies;
}

std::optional<InFlight> Network::PopDue(uint64_t now_tick, const std::set<NodeId>& held) {
  for (auto it = queue_.begin(); it != queue_.end() && it->first.first <= now_tick; ++it) {
    if (held.count(it->second.msg.to)) continue;
    InFlight f = std::move(it->second);
    queue_.erase(it);
    return f;
  }
  return std::nullopt;
}

}  // namespace ganglion::raft::sim
