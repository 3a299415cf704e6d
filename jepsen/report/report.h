// What a run leaves behind in jepsen/store/<run>/: history.jsonl (every
// operation), results.json (each checker's verdict with the violating
// operations) and report.html (a per-process timeline with the nemesis
// intervals shaded, latency over time, and the results table, as inline SVG
// with no scripts). Writing never changes a verdict.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "jepsen/check/history.h"
#include "jepsen/nemesis/nemesis.h"
#include "jepsen/workload/workload.h"
#include "nlohmann/json.hpp"

namespace ganglion::jepsen {

struct RunInfo {
  std::string run;                                     // the store directory's name
  nlohmann::json settings = nlohmann::json::object();  // workloads, nemeses, members, net, ...
  int64_t duration_ns = 0;
};

// The overall verdict: valid only if every checker said valid.
Verdict Overall(const std::vector<CheckResult>& results);

absl::Status WriteHistory(const std::string& path, const std::vector<Operation>& history);
absl::Status WriteResults(const std::string& path, const RunInfo& info,
                          const std::vector<CheckResult>& results,
                          const std::vector<NemesisInterval>& nemesis);
absl::Status WriteReport(const std::string& path, const RunInfo& info,
                         const std::vector<Operation>& history,
                         const std::vector<CheckResult>& results,
                         const std::vector<NemesisInterval>& nemesis);

}  // namespace ganglion::jepsen
