// The load generators' histogram: percentiles within 1% of the exact sample
// at every scale, bounded memory, and merging equals recording together.
#include "bench/load/latency.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ganglion::bench {
namespace {

TEST(LatencyHistogram, PercentilesWithinOnePercent) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(13.0, 1.5);  // ~0.4 ms median, long tail
  LatencyHistogram h;
  std::vector<int64_t> samples;
  for (int i = 0; i < 200000; i++) {
    const int64_t v = static_cast<int64_t>(dist(rng));
    samples.push_back(v);
    h.Record(v);
  }
  std::sort(samples.begin(), samples.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const int64_t exact = samples[static_cast<size_t>(q * samples.size()) - 1];
    const int64_t got = h.Percentile(q);
    EXPECT_NEAR(static_cast<double>(got), static_cast<double>(exact), exact * 0.01 + 1) << q;
  }
  EXPECT_EQ(h.max_ns(), samples.back());
  EXPECT_EQ(h.Percentile(1.0), samples.back());
  EXPECT_EQ(h.count(), samples.size());
}

TEST(LatencyHistogram, SmallValuesAreExactAndEmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.5), 0);
  for (int64_t v : {3, 5, 7, 100}) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), 5);
  EXPECT_EQ(h.Percentile(0.75), 7);
  EXPECT_EQ(h.Percentile(1.0), 100);
}

TEST(LatencyHistogram, MergeEqualsRecordingTogether) {
  LatencyHistogram a, b, both;
  for (int64_t v = 1; v < 100000; v += 37) {
    (v % 2 ? a : b).Record(v * 1000);
    both.Record(v * 1000);
  }
  a.Merge(b);
  for (double q : {0.1, 0.5, 0.99}) EXPECT_EQ(a.Percentile(q), both.Percentile(q));
  EXPECT_EQ(a.count(), both.count());
  EXPECT_EQ(a.max_ns(), both.max_ns());
}

TEST(OpStats, CountsFailuresByKind) {
  OpStats s, t;
  s.errors["UNAVAILABLE: no leader"] = 2;
  t.errors["UNAVAILABLE: no leader"] = 1;
  t.errors["DEADLINE_EXCEEDED: x"] = 4;
  s.Merge(t);
  EXPECT_EQ(s.failed(), 7u);
  EXPECT_EQ(s.errors["UNAVAILABLE: no leader"], 3u);
}

}  // namespace
}  // namespace ganglion::bench
