#include "orchestrator/agent/pod_ip.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ganglion::orchestrator::agent {

namespace {
constexpr uint32_t kLoopbackNet = 0x7f000000;
constexpr uint32_t kLocalhost = 0x7f000001;
}  // namespace

std::string FormatIpv4(uint32_t a) {
  return absl::StrCat(a >> 24, ".", (a >> 16) & 0xff, ".", (a >> 8) & 0xff, ".", a & 0xff);
}

absl::StatusOr<uint32_t> ParseIpv4(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '.');
  if (parts.size() != 4) return absl::InvalidArgumentError(absl::StrCat("bad IPv4 address ", text));
  uint32_t a = 0;
  for (const std::string& p : parts) {
    int v = 0;
    if (!absl::SimpleAtoi(p, &v) || v < 0 || v > 255) {
      return absl::InvalidArgumentError(absl::StrCat("bad IPv4 address ", text));
    }
    a = (a << 8) | static_cast<uint32_t>(v);
  }
  return a;
}

std::string Ipv4Block::ToString() const {
  return absl::StrCat(FormatIpv4(base), "/", prefix_bits);
}

absl::StatusOr<Ipv4Block> ParseLoopbackBlock(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  int bits = 0;
  if (slash == std::string::npos || !absl::SimpleAtoi(cidr.substr(slash + 1), &bits)) {
    return absl::InvalidArgumentError(absl::StrCat("pod CIDR ", cidr, " is not address/bits"));
  }
  if (bits < 16 || bits > 30) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod CIDR ", cidr, ": the prefix must be /16 to /30"));
  }
  auto address = ParseIpv4(cidr.substr(0, slash));
  if (!address.ok()) return address.status();
  if ((*address & 0xff000000) != kLoopbackNet) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pod CIDR ", cidr, " is not inside 127.0.0.0/8 (pods get loopback addresses)"));
  }
  const uint32_t mask = ~((uint32_t{1} << (32 - bits)) - 1);
  return Ipv4Block{*address & mask, bits};
}

Ipv4Block DefaultBlockFor(const std::string& node_name) {
  // FNV-1a: stable across runs and builds (std::hash is not).
  uint32_t h = 2166136261u;
  for (unsigned char c : node_name) h = (h ^ c) * 16777619u;
  const uint32_t a = 1 + h % 254;
  const uint32_t b = (h / 254) % 256;
  return Ipv4Block{kLoopbackNet | (a << 16) | (b << 8), 24};
}

size_t PodIpAllocator::capacity() const {
  return (size_t{1} << (32 - block_.prefix_bits)) - 2;
}

absl::StatusOr<std::string> PodIpAllocator::Allocate() {
  const uint32_t size = uint32_t{1} << (32 - block_.prefix_bits);
  for (uint32_t i = 1; i + 1 < size; ++i) {
    const uint32_t a = block_.base + i;
    if (a == kLocalhost || used_.count(a)) continue;
    used_.insert(a);
    return FormatIpv4(a);
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no free pod address in ", block_.ToString(), " (", used_.size(), " in use)"));
}

bool PodIpAllocator::Reserve(const std::string& address) {
  auto a = ParseIpv4(address);
  if (!a.ok()) return false;
  const uint32_t size = uint32_t{1} << (32 - block_.prefix_bits);
  if (*a <= block_.base || *a >= block_.base + size - 1) return false;
  used_.insert(*a);
  return true;
}

void PodIpAllocator::Release(const std::string& address) {
  auto a = ParseIpv4(address);
  if (a.ok()) used_.erase(*a);
}

}  // namespace ganglion::orchestrator::agent
