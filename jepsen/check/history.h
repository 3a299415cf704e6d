// A history: every operation a workload's clients invoked, with how it ended
// and when, as Jepsen records it. The checkers read it; runs write it to
// history.jsonl, one operation per line. It holds only what the clients saw.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ganglion::jepsen {

// How an operation ended: ok (it took effect), fail (it certainly did not),
// info (unknown: a timeout or a lost connection; it may take effect at any
// later time, or never).
enum class OpType { kOk, kFail, kInfo };

// One micro-operation of a list-append transaction: append `value` to `key`,
// or read `key` (the list it held).
struct MicroOp {
  enum Kind { kAppend, kRead } kind = kRead;
  std::string key;
  int64_t value = 0;                         // for kAppend
  std::optional<std::vector<int64_t>> read;  // for kRead, once known
};

struct Operation {
  int64_t index = 0;  // position in the history file
  int process = 0;    // the client that ran it
  OpType type = OpType::kOk;
  std::string f;    // "read", "write", "cas", "txn", "acquire", ...
  std::string key;  // register workloads
  // Register values: write(value), read -> value (nullopt: read absent or
  // unknown), cas(value -> value2).
  std::optional<int64_t> value;
  std::optional<int64_t> value2;
  std::vector<MicroOp> txn;  // list-append
  int64_t start_ns = 0;      // invocation
  int64_t end_ns = 0;        // completion (for info: when the client gave up)
  std::string error;         // why it failed or is unknown
};

const char* OpTypeName(OpType t);

// One JSON object per line (history.jsonl); ParseHistory accepts what
// FormatOperation writes.
std::string FormatOperation(const Operation& op);
absl::StatusOr<std::vector<Operation>> ParseHistory(const std::string& jsonl);

}  // namespace ganglion::jepsen
