// A private network for one harness run, built from Linux network
// namespaces: member i lives in namespace <prefix>-m<i> with one veth
// (eth0, 10.<net>.<i+11>/24) whose other end is on a bridge inside namespace
// <prefix>-br; the harness reaches the bridge through a veth pair it creates
// (<prefix>h in its own namespace, the /24's .1). Partitions are iptables
// INPUT rules inside the member namespaces, so nothing outside them changes.
// It must never touch an interface, address or rule it did not create, and
// must leave nothing behind: Destroy() (also run by the destructor) removes
// every namespace and link, and Create() first removes what a crashed run
// with the same prefix left.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ganglion::jepsen {

class NetLab {
 public:
  // `prefix`: at most 11 characters of [a-z0-9] (the host link's name is
  // <prefix>h and Linux allows 15). `members`: how many slots.
  static absl::StatusOr<std::unique_ptr<NetLab>> Create(const std::string& prefix, int members);
  // Whether this machine lets us build one (root, `ip`, `iptables`, netns).
  static absl::Status Available();
  // Deletes namespaces "<prefix>-*" and the link "<prefix>h", if present.
  static void RemoveLeftovers(const std::string& prefix);

  ~NetLab();
  NetLab(const NetLab&) = delete;
  NetLab& operator=(const NetLab&) = delete;

  std::string netns(int i) const;
  std::string ip(int i) const;
  std::string host_ip() const;

  // drop_from[i]: the members whose packets member i drops. Replaces every
  // earlier rule.
  absl::Status SetGrudge(const std::vector<std::set<int>>& drop_from);
  absl::Status Heal();
  void Destroy();

 private:
  NetLab(std::string prefix, int members, int subnet);
  absl::Status Build();

  const std::string prefix_;
  const int members_;
  const int subnet_;  // the third octet of 10.213.<subnet>.0/24
  bool destroyed_ = false;
};

}  // namespace ganglion::jepsen
