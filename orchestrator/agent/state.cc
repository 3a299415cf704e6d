#include "orchestrator/agent/state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace ganglion::orchestrator::agent {

namespace {

using Json = nlohmann::json;

int64_t ToNanos(absl::Time t) {
  return t == absl::InfinitePast() ? 0 : absl::ToUnixNanos(t);
}
absl::Time FromNanos(int64_t n) {
  return n == 0 ? absl::InfinitePast() : absl::FromUnixNanos(n);
}

Json EncodeTermination(const Termination& t) {
  return {{"exitCode", t.exit_code},
          {"signal", t.signal},
          {"reason", t.reason},
          {"message", t.message},
          {"startedAt", ToNanos(t.started_at)},
          {"finishedAt", ToNanos(t.finished_at)},
          {"containerID", t.container_id}};
}

Termination DecodeTermination(const Json& j) {
  Termination t;
  t.exit_code = j.value("exitCode", 0);
  t.signal = j.value("signal", 0);
  t.reason = j.value("reason", "");
  t.message = j.value("message", "");
  t.started_at = FromNanos(j.value("startedAt", int64_t{0}));
  t.finished_at = FromNanos(j.value("finishedAt", int64_t{0}));
  t.container_id = j.value("containerID", "");
  return t;
}

}  // namespace

std::string EncodePodRecord(const PodRecord& r) {
  Json containers = Json::object();
  for (const auto& [name, c] : r.containers) {
    Json j = {{"pid", c.pid},
              {"startTicks", c.start_ticks},
              {"startedAt", ToNanos(c.started_at)},
              {"restartCount", c.restart_count},
              {"run", c.run},
              {"succeeded", c.succeeded}};
    if (c.last) j["last"] = EncodeTermination(*c.last);
    containers[name] = j;
  }
  Json j = {{"uid", r.uid},      {"namespace", r.namespace_name},      {"name", r.name},
            {"podIP", r.pod_ip}, {"startedAt", ToNanos(r.started_at)}, {"containers", containers}};
  return j.dump(2);
}

absl::StatusOr<PodRecord> DecodePodRecord(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("uid") || !j["uid"].is_string()) {
    return absl::DataLossError("pod state is not a JSON object with a uid");
  }
  try {
    PodRecord r;
    r.uid = j["uid"];
    r.namespace_name = j.value("namespace", "");
    r.name = j.value("name", "");
    r.pod_ip = j.value("podIP", "");
    r.started_at = FromNanos(j.value("startedAt", int64_t{0}));
    const Json containers = j.contains("containers") ? j["containers"] : Json::object();
    if (!containers.is_object())
      return absl::DataLossError("pod state: containers is not an object");
    for (auto it = containers.begin(); it != containers.end(); ++it) {
      const std::string& name = it.key();
      const Json& c = it.value();
      ContainerRecord cr;
      cr.pid = c.value("pid", 0);
      cr.start_ticks = c.value("startTicks", uint64_t{0});
      cr.started_at = FromNanos(c.value("startedAt", int64_t{0}));
      cr.restart_count = c.value("restartCount", 0);
      cr.run = c.value("run", 0);
      cr.succeeded = c.value("succeeded", false);
      if (c.contains("last")) cr.last = DecodeTermination(c["last"]);
      r.containers[name] = cr;
    }
    return r;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("pod state has a field of the wrong type: ", e.what()));
  }
}

absl::Status WritePodRecord(const std::string& path, const PodRecord& record) {
  const std::string tmp = path + ".tmp";
  const std::string text = EncodePodRecord(record);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<PodRecord> ReadPodRecord(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no pod state at ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return DecodePodRecord(ss.str());
}

std::optional<uint64_t> ProcessStartTicks(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return std::nullopt;
  uint64_t ticks = 0;
  if (!absl::SimpleAtoi(fields[19], &ticks)) return std::nullopt;
  return ticks;
}

bool SameProcessAlive(pid_t pid, uint64_t start_ticks) {
  auto ticks = ProcessStartTicks(pid);
  return ticks.has_value() && *ticks == start_ticks;
}

}  // namespace ganglion::orchestrator::agent
