#include "orchestrator/agent/logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator::agent {

std::string FormatLogTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", t, absl::UTCTimeZone());
}

std::string EncodeLogLine(absl::Time time, const std::string& stream, bool partial,
                          std::string_view text) {
  std::string out = absl::StrCat(FormatLogTime(time), " ", stream, partial ? " P " : " F ");
  out.append(text.data(), text.size());
  out.push_back('\n');
  return out;
}

std::optional<LogLine> ParseLogLine(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  const size_t a = line.find(' ');
  if (a == std::string_view::npos) return std::nullopt;
  const size_t b = line.find(' ', a + 1);
  if (b == std::string_view::npos || b + 2 > line.size()) return std::nullopt;
  LogLine out;
  std::string error;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", std::string(line.substr(0, a)), &out.time, &error)) {
    return std::nullopt;
  }
  out.stream = std::string(line.substr(a + 1, b - a - 1));
  const char tag = line[b + 1];
  if (tag != 'F' && tag != 'P') return std::nullopt;
  out.partial = tag == 'P';
  out.text = b + 3 <= line.size() ? std::string(line.substr(b + 3)) : "";
  return out;
}

std::string RunLogPath(const std::string& dir, int run) {
  return absl::StrCat(dir, "/", run, ".log");
}

std::vector<std::string> RunLogFiles(const std::string& dir, int run) {
  std::vector<std::string> out;
  for (const std::string& p : {RunLogPath(dir, run) + ".1", RunLogPath(dir, run)}) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) out.push_back(p);
  }
  return out;
}

std::string RenderLine(const LogLine& line, bool timestamps) {
  std::string out = timestamps ? absl::StrCat(FormatLogTime(line.time), " ") : "";
  absl::StrAppend(&out, line.text);
  if (!line.partial) out.push_back('\n');
  return out;
}

std::string ReadLogs(const std::vector<std::string>& files, const LogReadOptions& options) {
  // A tail keeps only the last N lines in memory; otherwise lines stream out.
  std::deque<LogLine> tail;
  std::string out;
  auto emit = [&](const LogLine& l) {
    if (options.limit_bytes && static_cast<int64_t>(out.size()) >= *options.limit_bytes) return;
    out += RenderLine(l, options.timestamps);
  };
  for (const std::string& path : files) {
    std::ifstream in(path);
    std::string raw;
    while (std::getline(in, raw)) {
      auto line = ParseLogLine(raw);
      if (!line) continue;
      if (options.since && line->time < *options.since) continue;
      if (options.tail_lines) {
        if (*options.tail_lines <= 0) continue;
        tail.push_back(std::move(*line));
        if (static_cast<int64_t>(tail.size()) > *options.tail_lines) tail.pop_front();
      } else {
        emit(*line);
      }
    }
  }
  for (const LogLine& l : tail) emit(l);
  if (options.limit_bytes && static_cast<int64_t>(out.size()) > *options.limit_bytes) {
    out.resize(static_cast<size_t>(*options.limit_bytes));
  }
  return out;
}

LogWriter::LogWriter(std::string path, int64_t rotate_bytes)
    : path_(std::move(path)), rotate_bytes_(rotate_bytes) {}

LogWriter::~LogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

bool LogWriter::Open() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return false;
  struct stat st;
  size_ = ::fstat(fd_, &st) == 0 ? st.st_size : 0;
  return true;
}

void LogWriter::Write(const std::string& stream, bool partial, std::string_view text) {
  if (fd_ < 0) return;
  const std::string line = EncodeLogLine(absl::Now(), stream, partial, text);
  if (size_ > 0 && size_ + static_cast<int64_t>(line.size()) > rotate_bytes_) {
    // Readers holding the old file keep reading it; new ones find the rotated name.
    ::rename(path_.c_str(), (path_ + ".1").c_str());
    ::close(fd_);
    if (!Open()) return;
  }
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // disk full or the like: output is dropped, the container keeps running
    }
    done += static_cast<size_t>(n);
  }
  size_ += static_cast<int64_t>(line.size());
}

}  // namespace ganglion::orchestrator::agent
