// Linearizability of register histories by the Wing-Gong-Lowe search (as
// Knossos and Porcupine do it): find an order of the operations that respects
// real time (an operation that completed before another was invoked comes
// first) and that a single register would have produced. Keys are
// independent registers and are checked separately, in parallel.
// Operations that failed are left out (they did not happen); indeterminate
// ones (info) may take effect at any time after their invocation, or never;
// indeterminate reads say nothing and are left out. Past the time limit the
// verdict is "unknown", never "valid".
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "jepsen/check/history.h"

namespace ganglion::jepsen {

enum class Verdict { kValid, kInvalid, kUnknown };
const char* VerdictName(Verdict v);

struct KeyResult {
  Verdict verdict = Verdict::kValid;
  size_t operations = 0;  // checked (after dropping failed ops and unknown reads)
  // When invalid: the operation no linearization could place, and the
  // operations linearized before it on the longest order found.
  int64_t stuck_op = -1;
  std::vector<int64_t> longest_prefix;
  std::string detail;
};

struct LinearizabilityResult {
  Verdict verdict = Verdict::kValid;
  std::map<std::string, KeyResult> keys;
};

struct LinearizabilityOptions {
  std::chrono::milliseconds time_limit{10000};  // for the whole history
  int threads = 2;
};

// The register operations (f = read, write, cas) of `history`, grouped by key.
LinearizabilityResult CheckRegisters(const std::vector<Operation>& history,
                                     const LinearizabilityOptions& options = {});

}  // namespace ganglion::jepsen
