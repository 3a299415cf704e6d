#include "jepsen/cluster/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "jepsen/cluster/process.h"

namespace ganglion::jepsen {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kNetnsClientPort = 2379;
constexpr int kNetnsPeerPort = 2380;
constexpr int kNetnsMetricsPort = 2381;
constexpr milliseconds kStopWait{10000};
constexpr milliseconds kHealthPoll{200};
constexpr milliseconds kHealthProbeTimeout{1000};
constexpr size_t kHttpResponseBytesMax = 1 << 20;

int FreeLoopbackPort(std::set<int>& taken) {
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    if (port > 0 && taken.insert(port).second) return port;
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::pair<int, std::string>> HttpRequest(const std::string& host, int port,
                                                        const std::string& method,
                                                        const std::string& target,
                                                        milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  auto wait = [&](short events) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    return poll(&p, 1, static_cast<int>(left)) == 1;
  };
  auto fail = [&](const std::string& what) {
    close(fd);
    return absl::UnavailableError(absl::StrCat(what, " ", host, ":", port));
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS) {
    return fail("connect");
  }
  if (!wait(POLLOUT)) return fail("connect timeout");
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return fail(absl::StrCat("connect: ", strerror(err)));
  std::string req = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: ", host,
                                 "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < req.size()) {
    if (!wait(POLLOUT)) return fail("send timeout");
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return fail("send");
    sent += n;
  }
  std::string resp;
  char buf[4096];
  while (resp.size() < kHttpResponseBytesMax) {
    if (!wait(POLLIN)) return fail("read timeout");
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    resp.append(buf, n);
  }
  close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  int code = 0;
  if (resp.size() < 12 || !absl::SimpleAtoi(resp.substr(9, 3), &code)) {
    return absl::UnavailableError("bad HTTP response");
  }
  size_t body = resp.find("\r\n\r\n");
  return std::make_pair(code, body == std::string::npos ? "" : resp.substr(body + 4));
}

std::string MemberState::client_endpoint() const {
  return absl::StrCat(host, ":", client_port);
}
std::string MemberState::peer_url() const {
  return absl::StrCat("http://", host, ":", peer_port);
}
std::string MemberState::data_dir(const std::string& root) const {
  return absl::StrCat(root, "/", name, ".", incarnation, ".data");
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {}

Cluster::~Cluster() {
  Shutdown();
}

void Cluster::Shutdown() {
  admin_.reset();
  std::lock_guard lock(mu_);
  for (MemberState& m : members_) {
    if (m.pid == 0) continue;
    SignalGroup(m.pid, SIGKILL);
    SignalGroup(m.pid, SIGCONT);
    Reap(m.pid, kStopWait);
    m.pid = 0;
  }
  if (lab_) lab_->Destroy();
  lab_.reset();
}

std::string Cluster::LogPath(int i) const {
  return absl::StrCat(options_.dir, "/", members_.at(i).name, ".log");
}

absl::Status Cluster::Start() {
  if (options_.members < 1 || options_.members > 9) {
    return absl::InvalidArgumentError("members must be 1..9");
  }
  std::error_code ec;
  fs::create_directories(options_.dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", options_.dir, ": ", ec.message()));

  if (options_.net != "filter") {
    absl::Status available = NetLab::Available();
    if (available.ok()) {
      auto lab = NetLab::Create(options_.net_prefix, options_.members);
      if (lab.ok()) {
        lab_ = *std::move(lab);
      } else {
        available = lab.status();
      }
    }
    if (!lab_) {
      if (options_.net == "netns") return available;
      net_note_ = absl::StrCat("network namespaces unavailable: ", available.message());
    }
  }
  net_mode_ = lab_ ? "netns" : "filter";
  spdlog::info("event=cluster_net mode={} {}", net_mode_, net_note_);

  std::set<int> taken;
  std::vector<std::string> initial;
  {
    std::lock_guard lock(mu_);
    for (int i = 0; i < options_.members; i++) {
      MemberState m;
      m.name = absl::StrCat("n", i + 1);
      if (lab_) {
        m.host = lab_->ip(i);
        m.client_port = kNetnsClientPort;
        m.peer_port = kNetnsPeerPort;
        m.metrics_port = kNetnsMetricsPort;
      } else {
        m.host = "127.0.0.1";
        m.client_port = FreeLoopbackPort(taken);
        m.peer_port = FreeLoopbackPort(taken);
        m.metrics_port = FreeLoopbackPort(taken);
        if (m.client_port < 0 || m.peer_port < 0 || m.metrics_port < 0) {
          return absl::UnavailableError("no free loopback ports");
        }
      }
      initial.push_back(absl::StrCat(m.name, "=", m.peer_url()));
      members_.push_back(std::move(m));
    }
    for (MemberState& m : members_) {
      m.initial_cluster = absl::StrJoin(initial, ",");
      fs::remove_all(m.data_dir(options_.dir), ec);
    }
    for (int i = 0; i < size(); i++) {
      if (auto s = SpawnLocked(i); !s.ok()) return s;
    }
  }
  client::ClientConfig config;
  config.endpoints = client_endpoints();
  config.request_timeout = milliseconds(5000);
  config.dial_timeout = milliseconds(1000);
  auto admin = client::Client::Create(config);
  if (!admin.ok()) return admin.status();
  admin_ = *std::move(admin);
  for (int i = 0; i < size(); i++) {
    if (auto s = WaitHealthy(i, options_.start_timeout); !s.ok()) return s;
  }
  ids_.assign(size(), 0);
  for (int i = 0; i < size(); i++) {
    auto id = MemberId(i);
    if (!id.ok()) return id.status();
  }
  return absl::OkStatus();
}

client::Client& Cluster::admin() {
  return *admin_;
}

std::vector<std::string> Cluster::client_endpoints() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const MemberState& m : members_) out.push_back(m.client_endpoint());
  return out;
}

MemberState Cluster::member(int i) const {
  std::lock_guard lock(mu_);
  return members_.at(i);
}

bool Cluster::running(int i) const {
  std::lock_guard lock(mu_);
  return members_.at(i).pid != 0;
}

std::vector<std::string> Cluster::FlagsFor(const MemberState& m) const {
  std::vector<std::string> f = {
      options_.binary,
      "--name=" + m.name,
      "--data-dir=" + m.data_dir(options_.dir),
      absl::StrCat("--listen-client-urls=http://", m.host, ":", m.client_port),
      absl::StrCat("--advertise-client-urls=http://", m.host, ":", m.client_port),
      "--listen-peer-urls=" + m.peer_url(),
      "--initial-advertise-peer-urls=" + m.peer_url(),
      absl::StrCat("--listen-metrics-urls=http://", m.host, ":", m.metrics_port),
      "--initial-cluster=" + m.initial_cluster,
      "--initial-cluster-state=" + m.initial_cluster_state,
      "--initial-cluster-token=ganglion-jepsen",
      absl::StrCat("--heartbeat-interval=", options_.heartbeat_interval_ms),
      absl::StrCat("--election-timeout=", options_.election_timeout_ms),
  };
  if (!lab_) f.push_back("--experimental-fault-injection");
  f.insert(f.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  return f;
}

absl::Status Cluster::SpawnLocked(int i) {
  MemberState& m = members_.at(i);
  if (m.pid != 0) return absl::OkStatus();
  SpawnOptions so;
  so.argv = FlagsFor(m);
  so.env = m.env;
  so.netns = lab_ ? lab_->netns(i) : "";
  so.log_path = LogPath(i);
  auto pid = spawner_.Spawn(so);
  if (!pid.ok()) return pid.status();
  m.pid = *pid;
  m.paused = false;
  spdlog::info("event=member_start member={} pid={} env=\"{}\"", m.name, m.pid,
               absl::StrJoin(m.env, " "));
  return absl::OkStatus();
}

absl::Status Cluster::Kill(int i) {
  std::lock_guard lock(mu_);
  MemberState& m = members_.at(i);
  if (m.pid == 0) return absl::OkStatus();
  SignalGroup(m.pid, SIGKILL);
  SignalGroup(m.pid, SIGCONT);  // a stopped process dies only once continued on some kernels
  if (!Reap(m.pid, kStopWait)) {
    return absl::DeadlineExceededError(absl::StrCat(m.name, " did not die"));
  }
  m.pid = 0;
  m.paused = false;
  return absl::OkStatus();
}

absl::Status Cluster::StartMember(int i, const std::vector<std::string>& env) {
  std::lock_guard lock(mu_);
  if (members_.at(i).removed) return absl::FailedPreconditionError("member was removed");
  members_.at(i).env = env;
  return SpawnLocked(i);
}

absl::Status Cluster::Pause(int i) {
  std::lock_guard lock(mu_);
  MemberState& m = members_.at(i);
  if (m.pid == 0) return absl::FailedPreconditionError("not running");
  SignalGroup(m.pid, SIGSTOP);
  m.paused = true;
  return absl::OkStatus();
}

absl::Status Cluster::Resume(int i) {
  std::lock_guard lock(mu_);
  MemberState& m = members_.at(i);
  if (m.pid != 0) SignalGroup(m.pid, SIGCONT);
  m.paused = false;
  return absl::OkStatus();
}

absl::Status Cluster::WaitHealthy(int i, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  MemberState m = member(i);
  absl::Status last = absl::DeadlineExceededError("not probed");
  while (Clock::now() < deadline) {
    if (!running(i)) return absl::FailedPreconditionError(absl::StrCat(m.name, " is not running"));
    auto r = HttpRequest(m.host, m.metrics_port, "GET", "/health", kHealthProbeTimeout);
    if (r.ok() && r->first == 200) return absl::OkStatus();
    last = r.ok() ? absl::UnavailableError(absl::StrCat("HTTP ", r->first)) : r.status();
    std::this_thread::sleep_for(kHealthPoll);
  }
  return absl::DeadlineExceededError(
      absl::StrCat(m.name, " not healthy in time: ", last.message(), " (log ", LogPath(i), ")"));
}

absl::Status Cluster::SetFilterRules(const std::vector<std::set<int>>& drop_from) {
  // The transport rule "drop from j" on i, plus "drop to i" on j, matches
  // what an iptables INPUT rule on i does to a TCP stream: nothing of j's
  // reaches i, and i's messages are not acknowledged either.
  std::vector<std::set<uint64_t>> from(size()), to(size());
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(mu_);
    ids = ids_;
  }
  for (int i = 0; i < size() && i < static_cast<int>(drop_from.size()); i++) {
    for (int j : drop_from[i]) {
      from[i].insert(ids.at(j));
      to[j].insert(ids.at(i));
    }
  }
  absl::Status first;
  for (int i = 0; i < size(); i++) {
    MemberState m = member(i);
    if (m.pid == 0) continue;
    auto hex = [](const std::set<uint64_t>& s) {
      return absl::StrJoin(
          s, ",", [](std::string* out, uint64_t id) { absl::StrAppend(out, absl::Hex(id)); });
    };
    std::string target =
        absl::StrCat("/debug/fault?drop_to=", hex(to[i]), "&drop_from=", hex(from[i]));
    auto r = HttpRequest(m.host, m.metrics_port, "PUT", target, milliseconds(2000));
    absl::Status s = !r.ok()           ? r.status()
                     : r->first != 200 ? absl::InternalError(r->second)
                                       : absl::OkStatus();
    // A paused or dying member cannot answer; its rules are set again on
    // the next partition or heal, and a restarted member starts with none.
    if (!s.ok() && first.ok() && !m.paused) first = s;
  }
  return first;
}

absl::Status Cluster::Partition(const std::vector<std::set<int>>& drop_from) {
  if (lab_) return lab_->SetGrudge(drop_from);
  return SetFilterRules(drop_from);
}

absl::Status Cluster::Heal() {
  if (lab_) return lab_->Heal();
  return SetFilterRules(std::vector<std::set<int>>(size()));
}

absl::StatusOr<uint64_t> Cluster::MemberId(int i) {
  {
    std::lock_guard lock(mu_);
    if (ids_.size() > static_cast<size_t>(i) && ids_[i] != 0) return ids_[i];
  }
  auto list = admin().cluster().MemberList();
  if (!list.ok()) return list.status();
  std::lock_guard lock(mu_);
  for (const auto& m : list->members()) {
    for (size_t k = 0; k < members_.size(); k++) {
      for (const auto& url : m.peerurls()) {
        if (url == members_[k].peer_url() && !members_[k].removed) ids_[k] = m.id();
      }
    }
  }
  if (ids_[i] == 0) return absl::NotFoundError(absl::StrCat(members_[i].name, " not a member"));
  return ids_[i];
}

absl::StatusOr<int> Cluster::Leader() {
  for (int i = 0; i < size(); i++) {
    MemberState m = member(i);
    if (m.pid == 0 || m.paused || m.removed) continue;
    auto st = admin().maintenance().Status(m.client_endpoint());
    if (!st.ok() || st->leader() == 0) continue;
    std::lock_guard lock(mu_);
    for (size_t k = 0; k < ids_.size(); k++) {
      if (ids_[k] == st->leader()) return static_cast<int>(k);
    }
  }
  return absl::UnavailableError("no member reports a leader");
}

absl::Status Cluster::TransferLeadership(int to) {
  auto id = MemberId(to);
  if (!id.ok()) return id.status();
  auto r = admin().maintenance().MoveLeader(*id);
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status Cluster::Remove(int i) {
  auto id = MemberId(i);
  if (!id.ok()) return id.status();
  auto r = admin().cluster().MemberRemove(*id);
  if (!r.ok()) return r.status();
  {
    std::lock_guard lock(mu_);
    members_.at(i).removed = true;
    ids_.at(i) = 0;
  }
  // The removed member stops by itself once it learns of its removal; one
  // that does not (it was partitioned) is killed.
  return Kill(i);
}

absl::Status Cluster::AddBack(int i) {
  MemberState m = member(i);
  if (!m.removed) return absl::OkStatus();
  auto r = admin().cluster().MemberAdd({m.peer_url()});
  if (!r.ok()) return r.status();
  std::vector<std::string> initial;
  for (const auto& pm : r->members()) {
    std::string name = pm.name();
    if (pm.id() == r->member().id()) name = m.name;
    if (name.empty() || pm.peerurls().empty()) continue;
    initial.push_back(absl::StrCat(name, "=", pm.peerurls(0)));
  }
  std::lock_guard lock(mu_);
  MemberState& mm = members_.at(i);
  mm.incarnation++;
  mm.removed = false;
  mm.initial_cluster = absl::StrJoin(initial, ",");
  mm.initial_cluster_state = "existing";
  mm.env.clear();
  ids_.at(i) = r->member().id();
  std::error_code ec;
  fs::remove_all(mm.data_dir(options_.dir), ec);
  return SpawnLocked(i);
}

absl::StatusOr<int64_t> Cluster::CurrentRevision() {
  auto r = admin().kv().Get("jepsen-revision-probe");
  if (!r.ok()) return r.status();
  return r->header().revision();
}

absl::StatusOr<int64_t> Cluster::Compact(int64_t revision) {
  auto r = admin().kv().Compact(revision);
  if (!r.ok()) return r.status();
  return revision;
}

absl::Status Cluster::HealAll() {
  absl::Status first;
  auto keep = [&](absl::Status s) {
    if (!s.ok() && first.ok()) first = s;
  };
  for (int i = 0; i < size(); i++) {
    if (member(i).paused) keep(Resume(i));
  }
  keep(Heal());
  for (int i = 0; i < size(); i++) {
    MemberState m = member(i);
    if (m.removed) {
      keep(AddBack(i));
    } else if (m.pid != 0 && !m.env.empty()) {
      // Running under a skewed clock: back to the real one.
      keep(Kill(i));
      keep(StartMember(i));
    } else if (m.pid == 0) {
      keep(StartMember(i));
    }
  }
  return first;
}

}  // namespace ganglion::jepsen
