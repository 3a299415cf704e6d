#include "jepsen/cluster/netlab.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "jepsen/cluster/process.h"

namespace ganglion::jepsen {
namespace {

constexpr char kIp[] = "/usr/sbin/ip";
constexpr char kIptables[] = "/usr/sbin/iptables";
constexpr size_t kPrefixLengthMax = 11;

// The /24 follows from the prefix, so two runs with different prefixes do
// not share addresses, and a rerun with the same prefix reuses its own.
int SubnetOf(const std::string& prefix) {
  unsigned h = 0;
  for (char c : prefix) h = h * 31 + static_cast<unsigned char>(c);
  return 20 + static_cast<int>(h % 200);
}

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kIp};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunOrError(argv);
}

absl::Status Iptables(const std::string& netns, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kIp, "netns", "exec", netns, kIptables, "-w"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunOrError(argv);
}

}  // namespace

absl::Status NetLab::Available() {
  if (geteuid() != 0) return absl::UnavailableError("not root");
  if (!std::filesystem::exists(kIp)) return absl::UnavailableError("no /usr/sbin/ip");
  if (!std::filesystem::exists(kIptables)) return absl::UnavailableError("no /usr/sbin/iptables");
  const std::string probe = absl::StrCat("gjprobe", getpid());
  if (auto s = Ip({"netns", "add", probe}); !s.ok()) return absl::UnavailableError(s.message());
  absl::Status s = Iptables(probe, {"-S"});
  (void)Ip({"netns", "del", probe});
  if (!s.ok()) return absl::UnavailableError(s.message());
  return absl::OkStatus();
}

void NetLab::RemoveLeftovers(const std::string& prefix) {
  CommandResult list = RunCommand({kIp, "netns", "list"});
  for (absl::string_view line : absl::StrSplit(list.output, '\n', absl::SkipEmpty())) {
    std::string name(line.substr(0, line.find(' ')));
    if (absl::StartsWith(name, prefix + "-")) {
      spdlog::warn("event=netlab_leftover netns={}", name);
      (void)Ip({"netns", "del", name});
    }
  }
  if (RunCommand({kIp, "link", "show", prefix + "h"}).exit_code == 0) {
    spdlog::warn("event=netlab_leftover link={}h", prefix);
    (void)Ip({"link", "del", prefix + "h"});
  }
}

absl::StatusOr<std::unique_ptr<NetLab>> NetLab::Create(const std::string& prefix, int members) {
  if (prefix.empty() || prefix.size() > kPrefixLengthMax) {
    return absl::InvalidArgumentError("netlab prefix must have 1 to 11 characters");
  }
  for (char c : prefix) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)))) {
      return absl::InvalidArgumentError("netlab prefix must be [a-z0-9]");
    }
  }
  RemoveLeftovers(prefix);
  std::unique_ptr<NetLab> lab(new NetLab(prefix, members, SubnetOf(prefix)));
  if (auto s = lab->Build(); !s.ok()) {
    lab->Destroy();
    return s;
  }
  return lab;
}

NetLab::NetLab(std::string prefix, int members, int subnet)
    : prefix_(std::move(prefix)), members_(members), subnet_(subnet) {}

NetLab::~NetLab() {
  Destroy();
}

std::string NetLab::netns(int i) const {
  return absl::StrCat(prefix_, "-m", i);
}
std::string NetLab::ip(int i) const {
  return absl::StrCat("10.213.", subnet_, ".", 11 + i);
}
std::string NetLab::host_ip() const {
  return absl::StrCat("10.213.", subnet_, ".1");
}

absl::Status NetLab::Build() {
  const std::string br = prefix_ + "-br";
  const std::string host = prefix_ + "h";
  if (auto s = Ip({"netns", "add", br}); !s.ok()) return s;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-n", br, "link", "add", "br0", "type", "bridge"},
           {"-n", br, "link", "set", "br0", "up"},
           {"link", "add", host, "type", "veth", "peer", "name", "host", "netns", br},
           {"addr", "add", host_ip() + "/24", "dev", host},
           {"link", "set", host, "up"},
           {"-n", br, "link", "set", "host", "master", "br0", "up"}}) {
    if (auto s = Ip(args); !s.ok()) return s;
  }
  for (int i = 0; i < members_; i++) {
    const std::string ns = netns(i);
    const std::string end = absl::StrCat("m", i);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"netns", "add", ns},
             {"-n", br, "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", ns},
             {"-n", br, "link", "set", end, "master", "br0", "up"},
             {"-n", ns, "link", "set", "lo", "up"},
             {"-n", ns, "addr", "add", ip(i) + "/24", "dev", "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"}}) {
      if (auto s = Ip(args); !s.ok()) return s;
    }
  }
  spdlog::info("event=netlab_up prefix={} subnet=10.213.{}.0/24 members={}", prefix_, subnet_,
               members_);
  return absl::OkStatus();
}

absl::Status NetLab::SetGrudge(const std::vector<std::set<int>>& drop_from) {
  if (auto s = Heal(); !s.ok()) return s;
  for (int i = 0; i < members_ && i < static_cast<int>(drop_from.size()); i++) {
    for (int j : drop_from[i]) {
      if (auto s = Iptables(netns(i), {"-A", "INPUT", "-s", ip(j), "-j", "DROP"}); !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status NetLab::Heal() {
  absl::Status first;
  for (int i = 0; i < members_; i++) {
    if (auto s = Iptables(netns(i), {"-F", "INPUT"}); !s.ok() && first.ok()) first = s;
  }
  return first;
}

void NetLab::Destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  // Deleting a namespace deletes its veth ends, and with them their peers.
  for (int i = 0; i < members_; i++) (void)Ip({"netns", "del", netns(i)});
  (void)Ip({"netns", "del", prefix_ + "-br"});
  if (RunCommand({kIp, "link", "show", prefix_ + "h"}).exit_code == 0) {
    (void)Ip({"link", "del", prefix_ + "h"});
  }
  spdlog::info("event=netlab_down prefix={}", prefix_);
}

}  // namespace ganglion::jepsen
