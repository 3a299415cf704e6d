// ganglion-raft-sim: runs the deterministic cluster simulation over a range
// of seeds. The last line is always the totals; exit status 0 iff no seed
// found a violation. A failing seed's trace is written to a file so it can be
// read, and rerunning that seed reproduces it byte for byte.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "raft/sim/cluster.h"

namespace {

using ganglion::raft::sim::RunSimulation;
using ganglion::raft::sim::SimOptions;
using ganglion::raft::sim::SimStats;
using ganglion::raft::sim::Violation;

// The seed being run, for the abort handler: the core aborts on a broken
// invariant of its own, and the seed is what reproduces it.
std::atomic<uint64_t> g_current_seed{0};  // lock-free: safe to read in a handler

void OnAbort(int) {
  char buf[200];
  long long seed = static_cast<long long>(g_current_seed.load());
  int n = snprintf(buf, sizeof buf,
                   "seed=%lld violation=raft-fatal (the core aborted; rerun with --seeds=1 "
                   "--start-seed=%lld --trace=FILE for its trace)\n",
                   seed, seed);
  if (n > 0) (void)!write(1, buf, static_cast<size_t>(n));
  _exit(1);
}

bool Flag(const char* arg, const char* name, std::string* value) {
  size_t len = strlen(name);
  if (strncmp(arg, name, len) != 0 || arg[len] != '=') return false;
  *value = arg + len + 1;
  return true;
}

int Usage() {
  fprintf(stderr,
          "usage: ganglion-raft-sim --seeds=N --start-seed=S [--nodes=3|5|7] [--steps=M] "
          "[--trace=FILE] [--bug=NAME] [--crash-mid-ready=PER_MILLE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seeds = 1, start = 1;
  SimOptions base;
  std::string trace_path;
  for (int i = 1; i < argc; i++) {
    std::string v;
    if (Flag(argv[i], "--seeds", &v)) {
      if (!absl::SimpleAtoi(v, &seeds)) return Usage();
    } else if (Flag(argv[i], "--start-seed", &v)) {
      if (!absl::SimpleAtoi(v, &start)) return Usage();
    } else if (Flag(argv[i], "--nodes", &v)) {
      if (!absl::SimpleAtoi(v, &base.nodes)) return Usage();
    } else if (Flag(argv[i], "--steps", &v)) {
      if (!absl::SimpleAtoi(v, &base.chaos_steps)) return Usage();
    } else if (Flag(argv[i], "--trace", &v)) {
      trace_path = v;
    } else if (Flag(argv[i], "--bug", &v)) {
      base.bug = v;
    } else if (Flag(argv[i], "--crash-mid-ready", &v)) {
      if (!absl::SimpleAtoi(v, &base.crash_mid_ready_per_mille)) return Usage();
    } else {
      return Usage();
    }
  }
  signal(SIGABRT, OnAbort);

  SimStats totals;
  uint64_t violations = 0;
  uint64_t seeds_run = 0;
  for (uint64_t seed = start; seed < start + seeds; seed++) {
    g_current_seed.store(seed);
    SimOptions opts = base;
    opts.seed = seed;
    // A single seed with --trace always writes its trace.
    opts.trace = seeds == 1 && !trace_path.empty();
    FILE* live_trace = nullptr;
    if (opts.trace) {
      live_trace = fopen(trace_path.c_str(), "w");
      if (live_trace == nullptr) {
        fprintf(stderr, "cannot write %s\n", trace_path.c_str());
        return 2;
      }
      opts.trace_line_sink = [live_trace](const std::string& line) {
        fputs(line.c_str(), live_trace);
        fflush(live_trace);
      };
    }
    auto r = RunSimulation(opts);
    if (!r.ok()) {
      fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
      return 2;
    }
    totals.Add(r->stats);
    seeds_run++;
    if (r->violation) {
      violations++;
      if (live_trace) fclose(live_trace);
      const Violation found = *r->violation;
      std::string path =
          trace_path.empty() ? absl::StrCat("raft-sim-trace-", seed, ".txt") : trace_path;
      if (!opts.trace) {
        // Tracing costs time, so only a failing seed is rerun with it.
        opts.trace = true;
        r = RunSimulation(opts);
        std::ofstream(path) << r->trace;
        if (!r->violation || r->violation->name != found.name) {
          printf("seed=%llu: the traced rerun did not reproduce the violation (non-determinism)\n",
                 static_cast<unsigned long long>(seed));
        }
      }
      printf("seed=%llu violation=%s: %s (trace: %s)\n", static_cast<unsigned long long>(seed),
             found.name.c_str(), found.detail.c_str(), path.c_str());
      fflush(stdout);
      break;
    }
    if (live_trace) fclose(live_trace);
  }
  // A violation stops the run: seeds counts the seeds that ran.
  printf("seeds=%llu violations=%llu %s\n", static_cast<unsigned long long>(seeds_run),
         static_cast<unsigned long long>(violations), totals.Describe().c_str());
  return violations == 0 ? 0 : 1;
}
