// Latency recording for the load generators: a fixed-size log-linear
// histogram (128 sub-buckets per power of two, so any percentile is within
// 1% of the true sample) that never grows with the number of samples, and a
// count of failed calls by their gRPC code and message.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace ganglion::bench {

class LatencyHistogram {
 public:
  void Record(int64_t ns);
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  int64_t max_ns() const { return max_ns_; }
  // The smallest recorded value v such that at least q (0..1] of the samples
  // are <= v (within the bucket's 1%); 0 when empty.
  int64_t Percentile(double q) const;

 private:
  static constexpr int kSubBucketBits = 7;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr int kBuckets = 64 * kSubBuckets;
  static int BucketOf(int64_t ns);
  static int64_t UpperBoundOf(int bucket);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  int64_t max_ns_ = 0;
};

// What a run of one kind of call measured.
struct OpStats {
  LatencyHistogram latency;
  uint64_t ok = 0;
  std::map<std::string, uint64_t> errors;  // "<code name>: <message>" -> count

  void Merge(const OpStats& other);
  uint64_t failed() const;
};

// "UNAVAILABLE", "DEADLINE_EXCEEDED", ...
const char* GrpcCodeName(int code);

}  // namespace ganglion::bench
