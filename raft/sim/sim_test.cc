#include "raft/sim/cluster.h"

#include "gtest/gtest.h"

namespace ganglion::raft::sim {
namespace {

TEST(SimTest, Placeholder) {
  auto r = RunSimulation(SimOptions{.seed = 1, .nodes = 0, .chaos_steps = 400, .bug = "", .trace = true, .trace_line_sink = {}});
  ASSERT_TRUE(r.ok());
}

}  // namespace
}  // namespace ganglion::raft::sim
