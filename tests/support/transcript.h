// etcdctl transcripts: a script of etcdctl invocations, run against a cluster,
// recorded as text and normalized so that two clusters (etcd 3.4 and the
// binary under test) that behave the same produce the same record. The
// normalizer must only erase what legitimately differs between two correct
// clusters (ids, ports, sizes, raft terms and indexes, durations); anything a
// client could rely on (values, revisions, errors, exit codes) stays.
//
// Transcript syntax, one etcdctl invocation per line (the args after `etcdctl`):
//   # comment                    blank lines and comments are skipped
//   put foo bar                  run against the first member's endpoint
//   !all endpoint status         !all: --endpoints lists every member
//   !sort member list            !sort: sort output lines (order depends on ids
//                                or timing); table borders and header stay put
//   !stdin-bytes=1600000 put big  stdin is that many 'x' bytes
//   txn -w json <<EOF            stdin is the following lines up to `EOF`;
//   value("k") = "v"             inside, `!seq N template` expands to N lines
//                                with {i} replaced by 1..N
//   EOF
//   put k v --lease=$LEASE       $LEASE is the id of the last `lease grant`
//   !timeout=2000 watch foo --rev=2
//                                killed after 2000 ms (for commands that never
//                                exit, like watch): its output so far is
//                                recorded, then "-> timed out"
//   !bg=3000 watch foo --rev=5   runs in the background for at most 3000 ms
//                                while the next lines run (they start 1 s
//                                later, so it is connected); recorded at the
//                                next `!join` (or the end). Use --rev so the
//                                output does not depend on when it connected.
//   !join                        waits for background commands, records them
//   !bg=6000 !interrupt elect e p
//                                at its deadline the command gets SIGINT (a
//                                user's Ctrl-C: etcdctl elect resigns, lock
//                                unlocks) instead of SIGKILL
// Arguments split on blanks; '...' and "..." group.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ganglion::tests {

struct TranscriptStep {
  int line = 0;                   // 1-based line of the command in the file
  std::string text;               // the command line as written (recorded)
  std::vector<std::string> body;  // heredoc lines as written (recorded)
  std::vector<std::string> args;  // etcdctl arguments, before $VAR expansion
  std::string stdin_data;         // before $VAR expansion
  bool all_endpoints = false;
  bool sort_output = false;
  int64_t timeout_ms = 0;     // !timeout=MS; 0: the harness default
  int64_t background_ms = 0;  // !bg=MS
  bool interrupt = false;     // !interrupt: stopped by SIGINT at its deadline
  bool join = false;          // !join: no etcdctl, waits for !bg commands
};

absl::StatusOr<std::vector<TranscriptStep>> ParseTranscript(const std::string& text);

// Exact tokens to replace by placeholders, e.g. a member id in hex and in
// decimal -> "<id:m1>", "127.0.0.1:41235" -> "<m1.client>". A token only
// matches where it is not part of a longer word or number.
struct Normalizer {
  std::vector<std::pair<std::string, std::string>> tokens;

  void AddId(uint64_t id, const std::string& placeholder);  // hex and decimal forms
  void AddToken(std::string token, std::string placeholder);

  // Tokens, then the value rules (durations, sizes, terms, indexes, versions,
  // timestamps, table padding, Go stack traces). Idempotent.
  std::string Normalize(const std::string& text) const;
};

// Sorts the lines of `text`, keeping lines that start with '+' (table borders)
// and the first line that starts with '|' (the table header) in place.
std::string SortLines(const std::string& text);

// A unified-style line diff with `context` lines around each change; "" if equal.
std::string LineDiff(const std::string& expected, const std::string& actual,
                     const std::string& expected_name, const std::string& actual_name,
                     int context = 3);

}  // namespace ganglion::tests
