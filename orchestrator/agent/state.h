// What the agent keeps on disk about each pod it runs, so a restarted agent
// adopts the processes it started instead of starting duplicates, and kills
// those whose pod is gone instead of leaving orphans: per container the
// supervising process's pid and its start time (field 22 of /proc/<pid>/stat,
// which tells a live process from a recycled pid), its restart count and
// last termination. One JSON file per pod, replaced atomically (write to a
// temporary file, fsync, rename).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ganglion::orchestrator::agent {

struct Termination {
  int exit_code = 0;
  int signal = 0;      // 0 unless killed by a signal
  std::string reason;  // Completed, Error
  std::string message;
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  std::string container_id;
};

struct ContainerRecord {
  pid_t pid = 0;             // the container's supervisor (its process group leader); 0: none
  uint64_t start_ticks = 0;  // its start time, /proc/<pid>/stat field 22
  absl::Time started_at = absl::InfinitePast();
  int restart_count = 0;
  int run = 0;                      // index of the current run's log file
  std::optional<Termination> last;  // the previous run's end
  bool succeeded = false;           // an init container that finished with 0
};

struct PodRecord {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string pod_ip;
  absl::Time started_at = absl::InfinitePast();
  std::map<std::string, ContainerRecord> containers;  // init containers too, by name
};

std::string EncodePodRecord(const PodRecord& record);
absl::StatusOr<PodRecord> DecodePodRecord(const std::string& text);
absl::Status WritePodRecord(const std::string& path, const PodRecord& record);
absl::StatusOr<PodRecord> ReadPodRecord(const std::string& path);

// The start time of a live (not zombie) process, or nullopt if there is none.
std::optional<uint64_t> ProcessStartTicks(pid_t pid);
// True if `pid` is alive and is the process that had `start_ticks`.
bool SameProcessAlive(pid_t pid, uint64_t start_ticks);

}  // namespace ganglion::orchestrator::agent
