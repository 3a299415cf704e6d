// Pod addresses on a node without network namespaces: every pod gets its own
// loopback address (127.0.0.0/8 is all local on Linux) from the node's block,
// so two pods listening on the same containerPort do not collide as long as
// each binds its POD_IP. The block is `--pod-cidr` (a /16 to /30 inside
// 127.0.0.0/8), or a /24 derived from the node name. It never hands out the
// block's network address, its broadcast address or 127.0.0.1.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace ganglion::orchestrator::agent {

struct Ipv4Block {
  uint32_t base = 0;  // host order, the network address
  int prefix_bits = 24;
  std::string ToString() const;  // "127.1.2.0/24"
};

absl::StatusOr<Ipv4Block> ParseLoopbackBlock(const std::string& cidr);
// 127.<a>.<b>.0/24 with a, b from a hash of the name; a in 1..254 so it never
// overlaps 127.0.0.0/24 where servers usually listen.
Ipv4Block DefaultBlockFor(const std::string& node_name);
std::string FormatIpv4(uint32_t address);
absl::StatusOr<uint32_t> ParseIpv4(const std::string& text);

class PodIpAllocator {
 public:
  explicit PodIpAllocator(Ipv4Block block) : block_(block) {}
  // The lowest free address; ResourceExhausted when the block is full.
  absl::StatusOr<std::string> Allocate();
  // Marks an address in use (adopted from state on disk); false if outside the block.
  bool Reserve(const std::string& address);
  void Release(const std::string& address);
  size_t in_use() const { return used_.size(); }
  size_t capacity() const;
  const Ipv4Block& block() const { return block_; }

 private:
  Ipv4Block block_;
  std::set<uint32_t> used_;
};

}  // namespace ganglion::orchestrator::agent
