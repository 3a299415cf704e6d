#include "orchestrator/agent/pod_worker.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "orchestrator/agent/logs.h"
#include "orchestrator/agent/process.h"

namespace ganglion::orchestrator::agent {

namespace fs = std::filesystem;

namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string ContainerId(pid_t pid) {
  return absl::StrCat("process://", pid);
}

const Json* FindPath(const Json& j, std::initializer_list<const char*> path) {
  const Json* at = &j;
  for (const char* p : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(p);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// $(NAME) expands to the variable's value when it is defined, $$ to $;
// anything else is left as written (kubelet's rules).
std::string Expand(const std::string& in, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '$' && i + 1 < in.size()) {
      if (in[i + 1] == '$') {
        out.push_back('$');
        ++i;
        continue;
      }
      if (in[i + 1] == '(') {
        const size_t close = in.find(')', i + 2);
        if (close != std::string::npos) {
          auto it = vars.find(in.substr(i + 2, close - i - 2));
          if (it != vars.end()) {
            out += it->second;
            i = close;
            continue;
          }
        }
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

std::string RestartPolicy(const Json& pod) {
  const Json* p = FindPath(pod, {"spec", "restartPolicy"});
  return p && p->is_string() ? p->get<std::string>() : "Always";
}

int64_t GraceSeconds(const Json& pod) {
  if (const Json* g = FindPath(pod, {"metadata", "deletionGracePeriodSeconds"});
      g && g->is_number_integer()) {
    return std::max<int64_t>(0, g->get<int64_t>());
  }
  if (const Json* g = FindPath(pod, {"spec", "terminationGracePeriodSeconds"});
      g && g->is_number_integer()) {
    return std::max<int64_t>(0, g->get<int64_t>());
  }
  return 30;
}

}  // namespace

PodWorker::PodWorker(const WorkerConfig& config, PodRecord record)
    : config_(config), record_(std::move(record)) {
  fs::create_directories(PodDir());
}

std::string PodWorker::PodDir() const {
  return absl::StrCat(config_.pods_dir, "/", record_.uid);
}

std::string PodWorker::ContainerDir(const std::string& name) const {
  return absl::StrCat(PodDir(), "/containers/", name);
}

const ContainerRecord* PodWorker::Rec(const Container& c) const {
  auto it = record_.containers.find(c.name);
  return it == record_.containers.end() ? nullptr : &it->second;
}

void PodWorker::Save() {
  if (auto s = WritePodRecord(PodDir() + "/state.json", record_); !s.ok()) {
    // The pod keeps running; a restarted agent would then not adopt it.
    fprintf(stderr, "event=agent_state_write_failed pod=%s/%s error=\"%s\"\n",
            record_.namespace_name.c_str(), record_.name.c_str(), std::string(s.message()).c_str());
  }
}

void PodWorker::Event(const std::string& type, const std::string& reason,
                      const std::string& message) {
  if (events_.size() >= kPendingEventsMax) events_.erase(events_.begin());
  events_.push_back({type, reason, message});
}

void PodWorker::UpdateSpec(const Json& pod) {
  pod_ = pod;
  if (!containers_.empty()) {
    // Only image and a few fields of a pod spec may change; the processes stay.
    return;
  }
  const Json& spec = pod.at("spec");
  for (const char* list : {"initContainers", "containers"}) {
    for (const Json& c : spec.value(list, Json::array())) {
      Container k;
      k.name = Str(c, "name");
      k.init = std::string(list) == "initContainers";
      k.spec = c;
      k.backoff = RestartBackoff(config_.backoff);
      if (!c.contains("command") || !c["command"].is_array() || c["command"].empty()) {
        k.config_error =
            "the container has no command: there is no image to take a default from "
            "(ganglion-agent runs command + args as a process)";
      }
      containers_.push_back(std::move(k));
    }
  }
  for (Container& c : containers_) {
    const ContainerRecord* r = Rec(c);
    if (r && r->succeeded) c.finished = true;
    // Adopted: a record with a pid is a run that may still be going; its
    // probes start over (readiness false until it passes again).
    if (r && r->pid != 0) {
      for (ProbeKind kind : {ProbeKind::kLiveness, ProbeKind::kReadiness, ProbeKind::kStartup}) {
        std::string ignored;
        auto probe = ParseProbe(c.spec, kind, &ignored);
        if (probe) c.probes[static_cast<int>(kind)].emplace(*probe, kind, absl::Now());
      }
    }
  }
}

void PodWorker::Sync(const Json* pod, absl::Time now) {
  next_wake_ = absl::InfiniteFuture();
  if (pod == nullptr) {
    gone_ = true;
    if (containers_.empty()) {
      // Adopted state of a pod that is gone: its containers are known by name only.
      for (const auto& [name, r] : record_.containers) {
        Container k;
        k.name = name;
        k.backoff = RestartBackoff(config_.backoff);
        containers_.push_back(std::move(k));
      }
    }
  } else {
    UpdateSpec(*pod);
    if (FindPath(*pod, {"metadata", "deletionTimestamp"})) terminating_ = true;
  }
  for (Container& c : containers_) CheckExit(c, now);
  if (gone_ || terminating_) {
    Terminate(now);
    if (!gone_) status_ = BuildStatus(now);
    return;
  }
  // Stops asked for by a failed probe: SIGKILL once their grace is over.
  for (Container& c : containers_) {
    const ContainerRecord* r = Rec(c);
    if (r && r->pid != 0 && now >= c.stop_deadline) {
      SignalGroup(r->pid, SIGKILL);
    } else if (r && r->pid != 0 && c.stop_deadline != absl::InfiniteFuture()) {
      Wake(c.stop_deadline);
    }
  }
  // Init containers one at a time, in order; then every app container.
  bool initialized = true;
  for (Container& c : containers_) {
    if (!c.init) continue;
    if (c.finished && Rec(c) && Rec(c)->succeeded) continue;
    initialized = false;
    if (init_failed_) break;
    if (Rec(c) == nullptr || Rec(c)->pid == 0) Start(c, now);
    break;
  }
  for (Container& c : containers_) {
    if (c.init) continue;
    if (!initialized) {
      c.waiting_reason = "PodInitializing";
      c.waiting_message.clear();
      continue;
    }
    const ContainerRecord* r = Rec(c);
    if (!c.finished && (r == nullptr || r->pid == 0)) Start(c, now);
  }
  status_ = BuildStatus(now);
}

void PodWorker::CheckExit(Container& c, absl::Time now) {
  auto it = record_.containers.find(c.name);
  if (it == record_.containers.end() || it->second.pid == 0) return;
  ContainerRecord& r = it->second;
  if (SameProcessAlive(r.pid, r.start_ticks)) return;
  ReapIfChild(r.pid);
  // Whatever the command left in its group goes with it.
  SignalGroup(r.pid, SIGKILL);
  Termination t;
  auto exit = ReadExitRecord(absl::StrCat(ContainerDir(c.name), "/", r.run, ".exit"));
  if (exit) {
    t.exit_code = exit->exit_code;
    t.signal = exit->signal;
    t.finished_at = exit->finished_at;
  } else {
    t.exit_code = 128 + SIGKILL;
    t.signal = SIGKILL;
    t.finished_at = now;
    t.message = "the container's supervisor was killed before it recorded an exit status";
  }
  t.reason = t.exit_code == 0 ? "Completed" : "Error";
  if (c.killed_by_probe) t.message = "killed after failing its liveness or startup probe";
  t.started_at = r.started_at;
  t.container_id = ContainerId(r.pid);
  r.last = t;
  r.pid = 0;
  r.start_ticks = 0;
  c.stop_deadline = absl::InfiniteFuture();
  c.killed_by_probe = false;
  for (int k = 0; k < 3; ++k) {
    c.probes[k].reset();
    c.probe_running[k] = false;
  }
  const std::string policy = RestartPolicy(pod_);
  if (c.init) {
    if (t.exit_code == 0) {
      r.succeeded = true;
      c.finished = true;
    } else if (policy == "Never") {
      c.finished = true;
      init_failed_ = true;
    } else {
      c.next_start = c.backoff.OnExit(t.started_at, t.finished_at);
    }
  } else {
    const bool restart = policy == "Always" || (policy == "OnFailure" && t.exit_code != 0);
    if (restart) {
      c.next_start = c.backoff.OnExit(t.started_at, t.finished_at);
    } else {
      c.finished = true;
    }
  }
  Save();
}

void PodWorker::Start(Container& c, absl::Time now) {
  if (!c.config_error.empty()) {
    c.waiting_reason = "CreateContainerConfigError";
    c.waiting_message = c.config_error;
    return;
  }
  if (now < c.next_start) {
    if (c.waiting_reason != "CrashLoopBackOff") {
      Event("Warning", "BackOff",
            absl::StrCat("Back-off restarting failed container ", c.name, " in pod ", record_.name,
                         "_", record_.namespace_name, "(", record_.uid, ")"));
    }
    c.waiting_reason = "CrashLoopBackOff";
    c.waiting_message = absl::StrCat("back-off ", absl::FormatDuration(c.backoff.current()),
                                     " restarting failed container=", c.name, " pod=", record_.name,
                                     "_", record_.namespace_name, "(", record_.uid, ")");
    Wake(c.next_start);
    return;
  }
  std::string error;
  std::vector<std::string> env = EnvFor(c, &error);
  std::string working_dir;
  if (error.empty()) working_dir = WorkingDirFor(c, &error);
  if (error.empty()) PrepareVolumes(c, &error);
  if (!error.empty()) {
    c.waiting_reason = "CreateContainerConfigError";
    c.waiting_message = error;
    return;
  }
  std::map<std::string, std::string> vars;
  for (const std::string& kv : env) {
    const size_t eq = kv.find('=');
    vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::vector<std::string> argv;
  for (const char* field : {"command", "args"}) {
    for (const Json& a : c.spec.value(field, Json::array())) {
      if (a.is_string()) argv.push_back(Expand(a.get<std::string>(), vars));
    }
  }
  ContainerRecord& r = RecordOf(c);
  const bool first = r.run == 0;
  const std::string dir = ContainerDir(c.name);
  fs::create_directories(dir);
  const int run = r.run + 1;
  // Keep the previous run's files (for --previous); older ones go.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const int file_run = std::atoi(file.c_str());
    if (file_run > 0 && file_run < run - 1) fs::remove(entry.path(), ec);
  }
  LaunchSpec spec;
  spec.agent_binary = config_.agent_binary;
  spec.command = argv;
  spec.env = env;
  spec.working_dir = working_dir;
  spec.log_path = RunLogPath(dir, run);
  spec.exit_path = absl::StrCat(dir, "/", run, ".exit");
  spec.log_rotate_bytes = config_.log_rotate_bytes;
  fs::remove(spec.exit_path, ec);
  auto pid = Launch(spec);
  if (!pid.ok()) {
    Event("Warning", "Failed", absl::StrCat("Error: ", pid.status().message()));
    c.waiting_reason = "RunContainerError";
    c.waiting_message = std::string(pid.status().message());
    c.next_start = c.backoff.OnExit(now, now);
    Wake(c.next_start);
    return;
  }
  r.pid = *pid;
  r.start_ticks = ProcessStartTicks(*pid).value_or(0);
  r.started_at = now;
  r.run = run;
  if (!first) ++r.restart_count;
  Event("Normal", "Started",
        absl::StrCat("Started container ", c.name, " (process group ", *pid, ")"));
  c.waiting_reason.clear();
  c.waiting_message.clear();
  c.stop_deadline = absl::InfiniteFuture();
  for (ProbeKind kind : {ProbeKind::kLiveness, ProbeKind::kReadiness, ProbeKind::kStartup}) {
    std::string probe_error;
    auto probe = ParseProbe(c.spec, kind, &probe_error);
    if (probe) c.probes[static_cast<int>(kind)].emplace(*probe, kind, now);
  }
  if (record_.started_at == absl::InfinitePast()) record_.started_at = now;
  Save();
}

void PodWorker::Stop(Container& c, absl::Time now, absl::Duration grace) {
  const ContainerRecord* r = Rec(c);
  if (r == nullptr || r->pid == 0 || c.stop_deadline != absl::InfiniteFuture()) return;
  SignalGroup(r->pid, SIGTERM);
  Event("Normal", "Killing",
        absl::StrCat("Stopping container ", c.name, " (grace period ", absl::FormatDuration(grace),
                     ")"));
  c.stop_deadline = now + grace;
  Wake(c.stop_deadline);
}

void PodWorker::Terminate(absl::Time now) {
  if (kill_at_ == absl::InfiniteFuture()) {
    const int64_t grace = gone_ ? 0 : GraceSeconds(pod_);
    kill_at_ = now + absl::Seconds(grace);
    // The API server set deletionTimestamp to the end of the grace period: an
    // agent restarted meanwhile does not grant a second full period.
    absl::Time deadline;
    std::string error;
    if (const Json* ts = FindPath(pod_, {"metadata", "deletionTimestamp"});
        !gone_ && ts && ts->is_string() &&
        absl::ParseTime(absl::RFC3339_full, ts->get<std::string>(), &deadline, &error)) {
      // The stamp has whole seconds: the true end lies within the second after it.
      kill_at_ = std::clamp(deadline + absl::Seconds(1), now, kill_at_);
    }
    for (Container& c : containers_) {
      if (const ContainerRecord* r = Rec(c); r && r->pid != 0) {
        SignalGroup(r->pid, SIGTERM);
        if (!gone_) {
          Event("Normal", "Killing", absl::StrCat("Stopping container ", c.name));
        }
      }
    }
  }
  for (Container& c : containers_) {
    c.finished = true;
    const ContainerRecord* r = Rec(c);
    if (r && r->pid != 0 && now >= kill_at_) SignalGroup(r->pid, SIGKILL);
  }
  Wake(std::max(now + absl::Milliseconds(200), std::min(kill_at_, now + absl::Seconds(1))));
}

bool PodWorker::AnyProcessLeft() const {
  for (const auto& [name, r] : record_.containers) {
    if (r.pid != 0) return true;
  }
  return false;
}

int PodWorker::LiveProcessCount() const {
  int n = 0;
  for (const auto& [name, r] : record_.containers) {
    if (r.pid != 0 && SameProcessAlive(r.pid, r.start_ticks)) {
      n += static_cast<int>(GroupMembers(r.pid).size());
    }
  }
  return n;
}

bool PodWorker::ReadyToConfirmDelete() const {
  return terminating_ && !gone_ && !AnyProcessLeft();
}

void PodWorker::RemoveFiles() {
  std::error_code ec;
  fs::remove_all(PodDir(), ec);
}

std::vector<std::string> PodWorker::EnvFor(const Container& c, std::string* error) const {
  std::map<std::string, std::string> vars;
  std::vector<std::string> order;
  auto set = [&](const std::string& k, const std::string& v) {
    if (!vars.count(k)) order.push_back(k);
    vars[k] = v;
  };
  for (const std::string& kv : config_.base_env) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  set("HOSTNAME", record_.name);
  set("POD_NAME", record_.name);
  set("POD_NAMESPACE", record_.namespace_name);
  set("POD_UID", record_.uid);
  set("POD_IP", record_.pod_ip);
  set("NODE_NAME", config_.node_name);
  set("HOST_IP", config_.node_ip);
  for (const Json& e : c.spec.value("env", Json::array())) {
    const std::string name = Str(e, "name");
    if (name.empty()) continue;
    if (e.contains("value")) {
      set(name, Expand(Str(e, "value"), vars));
      continue;
    }
    const Json* field = FindPath(e, {"valueFrom", "fieldRef", "fieldPath"});
    if (field == nullptr || !field->is_string()) {
      if (e.contains("valueFrom")) {
        *error = absl::StrCat("env ", name,
                              ": only value and valueFrom.fieldRef are supported by "
                              "ganglion-agent (no configMapKeyRef, secretKeyRef, "
                              "resourceFieldRef)");
        return {};
      }
      set(name, "");
      continue;
    }
    const std::string path = field->get<std::string>();
    const Json& meta = pod_.at("metadata");
    std::string value;
    if (path == "metadata.name") {
      value = record_.name;
    } else if (path == "metadata.namespace") {
      value = record_.namespace_name;
    } else if (path == "metadata.uid") {
      value = record_.uid;
    } else if (path == "spec.nodeName") {
      value = config_.node_name;
    } else if (path == "spec.serviceAccountName") {
      value = Str(pod_.at("spec"), "serviceAccountName");
    } else if (path == "status.podIP" || path == "status.podIPs") {
      value = record_.pod_ip;
    } else if (path == "status.hostIP" || path == "status.hostIPs") {
      value = config_.node_ip;
    } else if (path.rfind("metadata.labels['", 0) == 0 ||
               path.rfind("metadata.annotations['", 0) == 0) {
      const bool labels = path[9] == 'l';
      const size_t open = path.find("['") + 2;
      const std::string key = path.substr(open, path.size() - open - 2);
      const Json map = meta.value(labels ? "labels" : "annotations", Json::object());
      value = map.is_object() ? map.value(key, "") : "";
    } else {
      *error = absl::StrCat("env ", name, ": unsupported fieldRef ", path);
      return {};
    }
    set(name, value);
  }
  for (const Json& m : c.spec.value("volumeMounts", Json::array())) {
    (void)m;  // mounts show up as symlinks (see PrepareVolumes), not variables
  }
  std::vector<std::string> out;
  for (const std::string& k : order) out.push_back(k + "=" + vars[k]);
  return out;
}

std::string PodWorker::WorkingDirFor(const Container& c, std::string* error) const {
  std::string dir = Str(c.spec, "workingDir");
  if (dir.empty()) dir = PodDir() + "/rootfs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) *error = absl::StrCat("workingDir ", dir, ": ", ec.message());
  return dir;
}

// There is no mount namespace: a volume is a folder (emptyDir: under the pod
// directory; hostPath: the host path itself), and a volumeMount at P is a
// symlink <pod dir>/rootfs/P -> that folder, so a process started in its
// default working directory (<pod dir>/rootfs) reaches it by the relative path.
bool PodWorker::PrepareVolumes(const Container& c, std::string* error) const {
  std::map<std::string, std::string> folders;
  for (const Json& v : pod_.at("spec").value("volumes", Json::array())) {
    const std::string name = Str(v, "name");
    if (v.contains("hostPath")) {
      folders[name] = Str(v["hostPath"], "path");
      const std::string type = Str(v["hostPath"], "type");
      if (type == "DirectoryOrCreate") fs::create_directories(folders[name]);
    } else if (v.contains("emptyDir")) {
      folders[name] = absl::StrCat(PodDir(), "/volumes/", name);
      fs::create_directories(folders[name]);
    }
  }
  for (const Json& m : c.spec.value("volumeMounts", Json::array())) {
    const std::string name = Str(m, "name");
    auto it = folders.find(name);
    if (it == folders.end()) {
      *error = absl::StrCat("volumeMount ", name,
                            ": no such volume, or not an emptyDir or hostPath volume");
      return false;
    }
    std::string mount = Str(m, "mountPath");
    while (!mount.empty() && mount.front() == '/') mount.erase(0, 1);
    if (mount.empty() || mount.find("..") != std::string::npos) {
      *error = absl::StrCat("volumeMount ", name, ": bad mountPath");
      return false;
    }
    const fs::path link = fs::path(PodDir()) / "rootfs" / mount;
    std::error_code ec;
    fs::create_directories(link.parent_path(), ec);
    if (!fs::is_symlink(link, ec)) {
      fs::create_directory_symlink(it->second, link, ec);
      if (ec) {
        *error = absl::StrCat("volumeMount ", name, ": ", link.string(), ": ", ec.message());
        return false;
      }
    }
  }
  return true;
}

std::vector<ProbeJob> PodWorker::TakeDueProbes(absl::Time now) {
  std::vector<ProbeJob> out;
  if (terminating_ || gone_) return out;
  for (Container& c : containers_) {
    const ContainerRecord* r = Rec(c);
    if (r == nullptr || r->pid == 0 || c.stop_deadline != absl::InfiniteFuture()) continue;
    auto& startup = c.probes[static_cast<int>(ProbeKind::kStartup)];
    const bool started = !startup || startup->passing();
    for (ProbeKind kind : {ProbeKind::kStartup, ProbeKind::kLiveness, ProbeKind::kReadiness}) {
      const int k = static_cast<int>(kind);
      auto& tracker = c.probes[k];
      if (!tracker || c.probe_running[k]) continue;
      // Once the startup probe passed it stops; until then the others wait.
      if (kind == ProbeKind::kStartup ? started : !started) continue;
      if (tracker->next_due() > now) {
        Wake(tracker->next_due());
        continue;
      }
      c.probe_running[k] = true;
      ProbeContext context;
      context.pod_ip = record_.pod_ip;
      std::string ignored;
      context.env = EnvFor(c, &ignored);
      context.working_dir = WorkingDirFor(c, &ignored);
      out.push_back({record_.uid, c.name, kind, tracker->spec(), std::move(context)});
    }
  }
  return out;
}

void PodWorker::OnProbeResult(const std::string& container, ProbeKind kind, bool success,
                              const std::string& message, absl::Time now) {
  for (Container& c : containers_) {
    if (c.name != container) continue;
    const int k = static_cast<int>(kind);
    c.probe_running[k] = false;
    if (!c.probes[k]) return;  // the run it probed is over
    const bool changed = c.probes[k]->Record(success, now, message);
    // A failing readiness probe is reported when it turns the container
    // unready, not every period; the others at most failureThreshold times a run.
    if (!success && (changed || kind != ProbeKind::kReadiness)) {
      Event("Warning", "Unhealthy", absl::StrCat(ProbeKindName(kind), " probe failed: ", message));
    }
    Wake(c.probes[k]->next_due());
    const bool failed = !c.probes[k]->passing();
    if (failed && (kind == ProbeKind::kLiveness || kind == ProbeKind::kStartup)) {
      c.killed_by_probe = true;
      Event("Normal", "Killing",
            absl::StrCat("Container ", c.name, " failed ", ProbeKindName(kind),
                         " probe, will be restarted"));
      // The probe's own terminationGracePeriodSeconds, else the pod's.
      int64_t grace = 30;
      const char* field = kind == ProbeKind::kLiveness ? "livenessProbe" : "startupProbe";
      if (const Json* g = FindPath(c.spec, {field, "terminationGracePeriodSeconds"});
          g && g->is_number_integer()) {
        grace = g->get<int64_t>();
      } else if (const Json* pg = FindPath(pod_, {"spec", "terminationGracePeriodSeconds"});
                 pg && pg->is_number_integer()) {
        grace = pg->get<int64_t>();
      }
      Stop(c, now, absl::Seconds(grace));
    }
    if (kind == ProbeKind::kStartup && !failed) {
      // The others start their schedule now.
      for (ProbeKind other : {ProbeKind::kLiveness, ProbeKind::kReadiness}) {
        auto& t = c.probes[static_cast<int>(other)];
        if (t) t.emplace(t->spec(), other, now);
      }
    }
  }
}

Json PodWorker::ContainerStatus(const Container& c) const {
  const ContainerRecord* r = Rec(c);
  Json s = {{"name", c.name},
            {"image", Str(c.spec, "image")},
            {"imageID", ""},
            {"restartCount", r ? r->restart_count : 0}};
  const auto& startup = c.probes[static_cast<int>(ProbeKind::kStartup)];
  const auto& readiness = c.probes[static_cast<int>(ProbeKind::kReadiness)];
  const bool running = r && r->pid != 0;
  const bool started = running && (!startup || startup->passing());
  s["started"] = started;
  s["ready"] =
      started && (!readiness || readiness->passing()) && c.stop_deadline == absl::InfiniteFuture();
  if (running) {
    s["containerID"] = ContainerId(r->pid);
    s["state"] = {{"running", {{"startedAt", Rfc3339(r->started_at)}}}};
  } else if (c.finished && r && r->last) {
    s["containerID"] = r->last->container_id;
  }
  auto terminated = [](const Termination& t) {
    Json j = {{"exitCode", t.exit_code},
              {"reason", t.reason},
              {"startedAt", Rfc3339(t.started_at)},
              {"finishedAt", Rfc3339(t.finished_at)},
              {"containerID", t.container_id}};
    if (t.signal != 0) j["signal"] = t.signal;
    if (!t.message.empty()) j["message"] = t.message;
    return Json{{"terminated", j}};
  };
  if (!running) {
    if (c.finished && r && r->last) {
      s["state"] = terminated(*r->last);
    } else {
      Json w = {{"reason", c.waiting_reason.empty() ? "ContainerCreating" : c.waiting_reason}};
      if (!c.waiting_message.empty()) w["message"] = c.waiting_message;
      s["state"] = {{"waiting", w}};
    }
  }
  // lastState: the run before the current one (or, once finished, before the last).
  s["lastState"] = Json::object();
  if (r && r->last && !(c.finished && !running)) s["lastState"] = terminated(*r->last);
  return s;
}

Json PodWorker::BuildStatus(absl::Time now) {
  Json status = pod_.value("status", Json::object());
  Json init_statuses = Json::array(), statuses = Json::array();
  bool initialized = true, all_ready = true, any_running = false, all_finished = true,
       any_failed = false, all_started_once = true;
  for (const Container& c : containers_) {
    Json s = ContainerStatus(c);
    const ContainerRecord* r = Rec(c);
    if (c.init) {
      if (!(r && r->succeeded)) initialized = false;
      init_statuses.push_back(std::move(s));
      continue;
    }
    if (!s["ready"].get<bool>()) all_ready = false;
    if (r && r->pid != 0) any_running = true;
    if (!c.finished) all_finished = false;
    if (c.finished && r && r->last && r->last->exit_code != 0) any_failed = true;
    if (!r || r->run == 0) all_started_once = false;
    statuses.push_back(std::move(s));
  }
  std::string phase;
  if (init_failed_) {
    phase = "Failed";
  } else if (!initialized || !all_started_once) {
    phase = "Pending";
  } else if (all_finished && !any_running) {
    phase = any_failed ? "Failed" : "Succeeded";
  } else {
    phase = "Running";
  }
  if (terminating_ && !AnyProcessLeft() && phase == "Running")
    phase = any_failed ? "Failed" : "Succeeded";
  status["phase"] = phase;
  status["hostIP"] = config_.node_ip;
  status["hostIPs"] = Json::array({{{"ip", config_.node_ip}}});
  status["podIP"] = record_.pod_ip;
  status["podIPs"] = Json::array({{{"ip", record_.pod_ip}}});
  if (record_.started_at != absl::InfinitePast()) status["startTime"] = Rfc3339(record_.started_at);
  if (!init_statuses.empty()) status["initContainerStatuses"] = init_statuses;
  status["containerStatuses"] = statuses;
  const bool ready = initialized && all_ready && any_running && !terminating_;
  Json conditions = Json::array();
  auto condition = [&](const std::string& type, bool value, const std::string& reason) {
    const std::string v = value ? "True" : "False";
    auto& [last, since] = conditions_[type];
    if (last != v) {
      last = v;
      since = now;
    }
    Json c = {{"type", type},
              {"status", v},
              {"lastProbeTime", nullptr},
              {"lastTransitionTime", Rfc3339(since)}};
    if (!value && !reason.empty()) c["reason"] = reason;
    conditions.push_back(c);
  };
  const bool completed = phase == "Succeeded" || phase == "Failed";
  condition("PodReadyToStartContainers", true, "");
  condition("Initialized", initialized, "ContainersNotInitialized");
  condition("Ready", ready, completed ? "PodCompleted" : "ContainersNotReady");
  condition("ContainersReady", initialized && all_ready && any_running,
            completed ? "PodCompleted" : "ContainersNotReady");
  condition("PodScheduled", true, "");
  status["conditions"] = conditions;
  return status;
}

std::optional<Json> PodWorker::StatusToWrite() const {
  if (!status_ || gone_) return std::nullopt;
  if (written_status_ && *written_status_ == *status_) return std::nullopt;
  return status_;
}

std::map<std::string, LogLocation> PodWorker::LogLocations() const {
  std::map<std::string, LogLocation> out;
  for (const Container& c : containers_) {
    const ContainerRecord* r = Rec(c);
    out[c.name] = {ContainerDir(c.name), r ? r->run : 0, r && r->pid != 0};
  }
  return out;
}

}  // namespace ganglion::orchestrator::agent
