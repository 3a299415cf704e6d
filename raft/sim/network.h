// The simulated network: every message gets a delivery tick, and may be
// dropped, duplicated or delayed (delays reorder). Links can be cut one way,
// which builds symmetric, asymmetric and partial partitions. Deterministic:
// all randomness comes from the Rng passed in, all iteration is ordered.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "raft/types.h"

namespace ganglion::raft::sim {

// The simulator's one source of randomness, seeded from the run seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Next() { return gen_(); }
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return gen_() % n; }
  // True with probability per_mille / 1000.
  bool Chance(uint64_t per_mille) { return Below(1000) < per_mille; }

 private:
  std::mt19937_64 gen_;
};

struct LinkFaults {
  uint64_t drop_per_mille = 0;
  uint64_t duplicate_per_mille = 0;
  uint64_t delay_min_ticks = 1;
  uint64_t delay_max_ticks = 1;  // inclusive; > min reorders messages
};

struct InFlight {
  Message msg;
  uint64_t sender_incarnation = 0;
};

class Network {
 public:
  // Queues m for delivery; returns how many copies were queued (0: dropped).
  int Send(const Message& m, uint64_t sender_incarnation, uint64_t now_tick, Rng& rng);
  // Removes and returns the next message due at or before now_tick whose
  // recipient is not held (paused); nullopt when none is due.
  std::optional<InFlight> PopDue(uint64_t now_tick, const std::set<NodeId>& held);

  bool Blocked(NodeId from, NodeId to) const { return cut_.count({from, to}) > 0; }
  void Cut(NodeId from, NodeId to) { cut_.insert({from, to}); }
  void HealAll() { cut_.clear(); }
  const std::set<std::pair<NodeId, NodeId>>& cuts() const { return cut_; }

  void set_faults(const LinkFaults& f) { faults_ = f; }
  const LinkFaults& faults() const { return faults_; }
  size_t in_flight() const { return queue_.size(); }

  uint64_t dropped = 0;
  uint64_t duplicated = 0;

 private:
  LinkFaults faults_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  // (delivery tick, sequence) -> message; the sequence breaks ties in send order.
  std::map<std::pair<uint64_t, uint64_t>, InFlight> queue_;
  uint64_t next_seq_ = 0;
};

}  // namespace ganglion::raft::sim
