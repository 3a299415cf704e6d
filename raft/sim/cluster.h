// The simulation driver: one seed decides the cluster size, the network's
// behaviour, the fault schedule and every client request. A run goes through
// phases: chaos (faults + load), heal (liveness: a leader and every pending
// proposal within a bound), flapping (a one-way or partially connected member
// must not keep deposing a healthy leader), and a full-cluster crash and
// restart (no committed entry is lost). Checks run after every delivery and
// every tick; the first violation ends the run.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "raft/sim/checker.h"
#include "raft/sim/network.h"
#include "raft/sim/node.h"

namespace ganglion::raft::sim {

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 0;          // 3, 5 or 7; 0: chosen by the seed
  int chaos_steps = 400;  // ticks of the chaos phase
  std::string bug;        // "" or one of the names KnownBugs() lists
  bool trace = false;     // record the trace (costs time)
  // Testing only: run the core without PreVote and CheckQuorum.
  bool disable_pre_vote = false;
  // Per mille of Readies at which the member crashes after the messages that
  // may leave before persisting (raft::MaySendBeforePersist: the leader's
  // appends, which the server sends before its own write) went out and
  // before it persisted anything. Drawn from its own generator, so 0 leaves
  // every seed's schedule as it was.
  uint64_t crash_mid_ready_per_mille = 0;
  // With trace: also receives each line as it happens (so a trace survives
  // the core aborting).
  std::function<void(const std::string&)> trace_line_sink;
};

struct SimStats {
  uint64_t elections = 0;       // times a node became leader
  uint64_t leader_changes = 0;  // times the newest leader differed from the previous
  uint64_t committed = 0;       // distinct committed indexes
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t crashes = 0;
  uint64_t mid_ready_crashes = 0;  // crashes between a Ready's early send and its write
  uint64_t partitions = 0;
  uint64_t snapshots_installed = 0;
  uint64_t conf_changes = 0;  // committed conf change entries that took effect
  uint64_t reads = 0;         // linearizable reads served and checked

  void Add(const SimStats& o);
  std::string Describe() const;  // "elections=.. leader_changes=.. ..."
};

struct SimResult {
  std::optional<Violation> violation;
  SimStats stats;
  std::string trace;
  uint64_t ticks = 0;
};

const std::vector<std::string>& KnownBugs();
// Fails on an unknown bug name.
absl::StatusOr<SimResult> RunSimulation(const SimOptions& opts);

}  // namespace ganglion::raft::sim
