// Container logs on disk and reading them back. Each run of a container
// writes `<dir>/<run>.log`; one line per output line (or per 16 KiB chunk of
// a longer one), stamped when it was read from the process:
//   2026-11-24T03:17:19.123456789Z stdout F hello
// (F: the line ended; P: a partial chunk continued by the next line).
// A run's file is rotated by size to `<run>.log.1` (one rotated file kept),
// so a run uses at most twice the size limit; the agent keeps the current
// and the previous run (`kubectl logs --previous`) and deletes older ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ganglion::orchestrator::agent {

inline constexpr size_t kLogChunkBytesMax = 16 * 1024;

struct LogLine {
  absl::Time time;
  std::string stream;  // stdout, stderr
  bool partial = false;
  std::string text;  // without the trailing newline
};

std::string FormatLogTime(absl::Time t);  // RFC 3339 with nanoseconds, UTC
std::string EncodeLogLine(absl::Time time, const std::string& stream, bool partial,
                          std::string_view text);
std::optional<LogLine> ParseLogLine(std::string_view line);

struct LogReadOptions {
  std::optional<int64_t> tail_lines;   // the last N lines only
  std::optional<absl::Time> since;     // lines stamped at or after it
  bool timestamps = false;             // prefix each line with its stamp
  std::optional<int64_t> limit_bytes;  // stop after this many bytes of output
};

// The files of one run in order (rotated first), those that exist.
std::vector<std::string> RunLogFiles(const std::string& dir, int run);
std::string RunLogPath(const std::string& dir, int run);
// What a user sees for the lines in `files`: the text of each line (with a
// newline unless partial), filtered and limited by `options`.
std::string ReadLogs(const std::vector<std::string>& files, const LogReadOptions& options);
// Renders raw lines (already filtered) for output.
std::string RenderLine(const LogLine& line, bool timestamps);

// Appends lines to a run's log file with size rotation; used by the
// container's supervisor process. Not thread-safe: one writer per file.
class LogWriter {
 public:
  LogWriter(std::string path, int64_t rotate_bytes);
  ~LogWriter();
  bool Open();
  void Write(const std::string& stream, bool partial, std::string_view text);

 private:
  std::string path_;
  int64_t rotate_bytes_;
  int fd_ = -1;
  int64_t size_ = 0;
};

}  // namespace ganglion::orchestrator::agent
