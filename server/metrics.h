// Prometheus metrics for the `ganglion` process: a registry of counters,
// gauges, gauge functions and histograms, rendered in the text exposition
// format 0.0.4 that `--listen-metrics-urls` serves at /metrics, and
// ServerMetrics, the etcd-named metrics a member exports so that dashboards
// and alerts written for etcd 3.4 work unchanged.
//
// Updating a metric is a few relaxed atomic operations: it never takes a
// lock, never allocates and never logs, so raft, apply and watch threads can
// update metrics on their hot paths. Only registration and Render() lock.
// The registry never does I/O and holds no global state: a process (or a
// test) makes as many registries as it likes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace ganglion::server {

// A value that only goes up (etcd's `_total` counters). Integer-valued, so
// concurrent increments are exact.
class Counter {
 public:
  void Inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void Add(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets with fixed upper bounds. A value v lands
// in the first bucket whose bound is >= v (Prometheus' `le`); values above
// every bound, and NaN, land in the implicit +Inf bucket.
class Histogram {
 public:
  // upper_bounds: strictly increasing, finite, at most kBucketsMax. Checked
  // by the registry, which is the only place histograms are made.
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double v);

  struct Snapshot {
    std::vector<double> upper_bounds;  // without +Inf
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back()
  };
  // Buckets are read one by one while observers run, so a snapshot may miss
  // or include an in-flight observation; count is derived from the buckets
  // so `_count` always equals the +Inf bucket.
  Snapshot Read() const;

  static constexpr size_t kBucketsMax = 64;

 private:
  const std::vector<double> upper_bounds_;
  // Not cumulative (one increment per observation); one extra for +Inf.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// `count` bounds start, start*factor, start*factor^2, ... (etcd's disk
// latency histograms are ExponentialBuckets(0.001, 2, 14)).
std::vector<double> ExponentialBuckets(double start, double factor, size_t count);

// Formats a sample value as the exposition format expects: "+Inf", "-Inf",
// "NaN", integers (|v| < 2^53) without fraction or exponent, anything else
// in the shortest form that reads back as the same double.
std::string FormatMetricValue(double v);

// Owns every metric registered on it; the returned pointers stay valid for
// the registry's lifetime and may be used from any thread.
//
// Registering a name twice, or a name whose exposed series (a histogram's
// `_bucket`, `_sum`, `_count`) collide with an existing metric's, or an
// invalid name, is a programming error: it logs and aborts the process.
// Metrics are registered once at startup from fixed names, so returning the
// existing metric instead would only hide two owners updating one series.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter* AddCounter(const std::string& name, const std::string& help);
  Gauge* AddGauge(const std::string& name, const std::string& help);
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> upper_bounds);
  // `value` runs at every Render(), on the rendering thread, without the
  // registry's lock held. It must be cheap and must not block (it runs on
  // the metrics listener's only I/O thread).
  void AddGaugeFunc(const std::string& name, const std::string& help,
                    std::function<double()> value);

  // Every metric, sorted by name, in the text exposition format 0.0.4.
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kGaugeFunc, kHistogram };
  struct Entry {
    Kind kind = Kind::kCounter;
    std::string help = {};
    std::unique_ptr<Counter> counter = nullptr;
    std::unique_ptr<Gauge> gauge = nullptr;
    std::function<double()> gauge_func = nullptr;
    std::unique_ptr<Histogram> histogram = nullptr;
  };

  // Aborts unless `name` is valid and none of `series` is taken. `entry` is
  // complete before it is published, so Render() never sees half of one.
  void Register(const std::string& name, std::unique_ptr<Entry> entry,
                const std::vector<std::string>& series);

  mutable std::mutex mu_;
  // Guarded by mu_. Entries are never removed and are held by unique_ptr, so
  // Render() may read them after releasing mu_.
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  // Guarded by mu_. Every series name any entry exposes.
  std::set<std::string> series_names_;
};

// What ServerMetrics reads at scrape time rather than being told. A null
// function reads as 0 (a member whose storage is not open yet).
struct ServerMetricsSources {
  std::function<double()> db_total_size_bytes = nullptr;         // etcd_mvcc_db_total_size_in_bytes
  std::function<double()> db_total_size_in_use_bytes = nullptr;  // ..._in_use_in_bytes
};

// The metrics a member exports, with etcd 3.4's names, types, help texts and
// bucket bounds (the etcd types are kept even where odd, e.g.
// proposals_committed_total is a gauge, so queries written for etcd behave
// the same). Ganglion has no WAL or bbolt: the raft log store's synced write
// stands for etcd's WAL fsync, the state store's write batch for etcd's
// backend commit.
struct ServerMetrics {
  ServerMetrics(MetricsRegistry* registry, ServerMetricsSources sources);

  // etcd_server_*
  Gauge* has_leader;
  Gauge* is_leader;
  Gauge* is_learner;
  Counter* leader_changes_seen_total;
  Gauge* proposals_committed_total;
  Gauge* proposals_applied_total;
  Gauge* proposals_pending;
  Counter* proposals_failed_total;
  Counter* heartbeat_send_failures_total;
  Counter* slow_apply_total;
  Counter* slow_read_indexes_total;
  Counter* read_indexes_failed_total;
  Counter* read_index_rounds_total;  // ganglion_server_read_index_rounds_total
  Gauge* quota_backend_bytes;

  // etcd_disk_*
  Histogram* wal_fsync_duration_seconds;
  Histogram* backend_commit_duration_seconds;
  Gauge* wal_write_bytes_total;

  // etcd_mvcc_* and etcd_debugging_mvcc_*
  Counter* mvcc_range_total;
  Counter* mvcc_put_total;
  Counter* mvcc_delete_total;
  Counter* mvcc_txn_total;
  Gauge* mvcc_keys_total;
  Gauge* mvcc_watch_stream_total;
  Gauge* mvcc_watcher_total;
  Gauge* mvcc_slow_watcher_total;
  Counter* mvcc_events_total;

  // etcd_debugging_lease_* and etcd_debugging_server_lease_expired_total
  Counter* lease_granted_total;
  Counter* lease_revoked_total;
  Counter* lease_renewed_total;
  Histogram* lease_ttl_total;
  Counter* lease_expired_total;
};

}  // namespace ganglion::server
