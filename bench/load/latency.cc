#include "bench/load/latency.h"

#include <algorithm>
#include <bit>

namespace ganglion::bench {

int LatencyHistogram::BucketOf(int64_t ns) {
  const uint64_t v = static_cast<uint64_t>(std::max<int64_t>(ns, 0));
  if (v < kSubBuckets) return static_cast<int>(v);  // exact below 128 ns
  const int exponent = 63 - std::countl_zero(v);    // >= kSubBucketBits
  const int shift = exponent - kSubBucketBits;
  const int sub = static_cast<int>((v >> shift) & (kSubBuckets - 1));
  return (shift + 1) * kSubBuckets + sub;
}

int64_t LatencyHistogram::UpperBoundOf(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  const int shift = bucket / kSubBuckets - 1;
  const uint64_t sub = static_cast<uint64_t>(bucket % kSubBuckets);
  return static_cast<int64_t>(((kSubBuckets | sub) << shift) + ((uint64_t{1} << shift) - 1));
}

void LatencyHistogram::Record(int64_t ns) {
  buckets_[static_cast<size_t>(BucketOf(ns))]++;
  count_++;
  max_ns_ = std::max(max_ns_, ns);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); i++) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ns_ = std::max(max_ns_, other.max_ns_);
}

int64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(q * count_ + 0.5));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); i++) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(UpperBoundOf(static_cast<int>(i)), max_ns_);
  }
  return max_ns_;
}

void OpStats::Merge(const OpStats& other) {
  latency.Merge(other.latency);
  ok += other.ok;
  for (const auto& [what, n] : other.errors) errors[what] += n;
}

uint64_t OpStats::failed() const {
  uint64_t n = 0;
  for (const auto& [what, count] : errors) n += count;
  return n;
}

const char* GrpcCodeName(int code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  return code >= 0 && code < 17 ? kNames[code] : "UNKNOWN_CODE";
}

}  // namespace ganglion::bench
