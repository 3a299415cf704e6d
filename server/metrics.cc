#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ganglion::server {
namespace {

[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr, "metrics: fatal: %s\n", what.c_str());
  std::abort();
}

// Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// HELP text escapes only backslash and newline.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  const char* type) {
  absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(help), "\n");
  absl::StrAppend(&out, "# TYPE ", name, " ", type, "\n");
}

void AppendSample(std::string& out, const std::string& name, double v) {
  absl::StrAppend(&out, name, " ", FormatMetricValue(v), "\n");
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  // First bound >= v; NaN compares false everywhere and so reaches +Inf.
  size_t i = std::partition_point(upper_bounds_.begin(), upper_bounds_.end(),
                                  [v](double bound) { return !(bound >= v); }) -
             upper_bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  s.cumulative.reserve(upper_bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, size_t count) {
  if (!(start > 0) || !(factor > 1) || count == 0) {
    Fatal(absl::StrCat("ExponentialBuckets(", start, ", ", factor, ", ", count, ")"));
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counters and most gauges are whole numbers: print them as such (no
  // "1e+06"), as long as the double holds the integer exactly.
  constexpr double kExactIntegerMax = 9007199254740992.0;  // 2^53
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) <= kExactIntegerMax) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
    return std::string(buf, end);
  }
  // Shortest text that parses back to the same double.
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

void MetricsRegistry::Register(const std::string& name, std::unique_ptr<Entry> entry,
                               const std::vector<std::string>& series) {
  if (!ValidName(name)) Fatal(absl::StrCat("invalid metric name '", name, "'"));
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& s : series) {
    if (series_names_.count(s) != 0) {
      Fatal(absl::StrCat("metric '", name, "' registered twice (series '", s, "' exists)"));
    }
  }
  series_names_.insert(series.begin(), series.end());
  entries_.emplace(name, std::move(entry));
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help) {
  auto e = std::make_unique<Entry>(Entry{.kind = Kind::kCounter, .help = help});
  e->counter = std::make_unique<Counter>();
  Counter* counter = e->counter.get();
  Register(name, std::move(e), {name});
  return counter;
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help) {
  auto e = std::make_unique<Entry>(Entry{.kind = Kind::kGauge, .help = help});
  e->gauge = std::make_unique<Gauge>();
  Gauge* gauge = e->gauge.get();
  Register(name, std::move(e), {name});
  return gauge;
}

void MetricsRegistry::AddGaugeFunc(const std::string& name, const std::string& help,
                                   std::function<double()> value) {
  if (!value) Fatal(absl::StrCat("gauge func '", name, "' has no function"));
  auto e = std::make_unique<Entry>(Entry{.kind = Kind::kGaugeFunc, .help = help});
  e->gauge_func = std::move(value);
  Register(name, std::move(e), {name});
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> upper_bounds) {
  // +Inf is implicit; a caller who lists it explicitly means the same thing.
  if (!upper_bounds.empty() && std::isinf(upper_bounds.back()) && upper_bounds.back() > 0) {
    upper_bounds.pop_back();
  }
  if (upper_bounds.size() > Histogram::kBucketsMax) {
    Fatal(absl::StrCat("histogram '", name, "' has ", upper_bounds.size(), " buckets, max ",
                       Histogram::kBucketsMax));
  }
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && !(upper_bounds[i - 1] < upper_bounds[i]))) {
      Fatal(absl::StrCat("histogram '", name, "' bounds must be finite and strictly increasing"));
    }
  }
  auto e = std::make_unique<Entry>(Entry{.kind = Kind::kHistogram, .help = help});
  e->histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  Histogram* histogram = e->histogram.get();
  Register(name, std::move(e), {name, name + "_bucket", name + "_sum", name + "_count"});
  return histogram;
}

std::string MetricsRegistry::Render() const {
  // Copy the entry list and let go of the lock before reading values: gauge
  // functions are caller code and may be slow or take their own locks.
  std::vector<std::pair<std::string, const Entry*>> entries;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries.reserve(entries_.size());
    for (const auto& [name, entry] : entries_) entries.emplace_back(name, entry.get());
  }
  std::string out;
  for (const auto& [name, e] : entries) {
    switch (e->kind) {
      case Kind::kCounter:
        AppendHeader(out, name, e->help, "counter");
        absl::StrAppend(&out, name, " ", e->counter->Value(), "\n");
        break;
      case Kind::kGauge:
        AppendHeader(out, name, e->help, "gauge");
        AppendSample(out, name, e->gauge->Value());
        break;
      case Kind::kGaugeFunc:
        AppendHeader(out, name, e->help, "gauge");
        AppendSample(out, name, e->gauge_func());
        break;
      case Kind::kHistogram: {
        AppendHeader(out, name, e->help, "histogram");
        Histogram::Snapshot s = e->histogram->Read();
        for (size_t i = 0; i < s.upper_bounds.size(); ++i) {
          absl::StrAppend(&out, name, "_bucket{le=\"", FormatMetricValue(s.upper_bounds[i]), "\"} ",
                          s.cumulative[i], "\n");
        }
        absl::StrAppend(&out, name, "_bucket{le=\"+Inf\"} ", s.count, "\n");
        AppendSample(out, name + "_sum", s.sum);
        absl::StrAppend(&out, name, "_count ", s.count, "\n");
        break;
      }
    }
  }
  return out;
}

ServerMetrics::ServerMetrics(MetricsRegistry* r, ServerMetricsSources sources) {
  auto or_zero = [](std::function<double()> f) -> std::function<double()> {
    if (f) return f;
    return [] { return 0.0; };
  };

  has_leader = r->AddGauge("etcd_server_has_leader",
                           "Whether or not a leader exists. 1 is existence, 0 is not.");
  is_leader = r->AddGauge("etcd_server_is_leader",
                          "Whether or not this member is a leader. 1 if is, 0 otherwise.");
  is_learner = r->AddGauge("etcd_server_is_learner",
                           "Whether or not this member is a learner. 1 if is, 0 otherwise.");
  leader_changes_seen_total =
      r->AddCounter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.");
  proposals_committed_total = r->AddGauge("etcd_server_proposals_committed_total",
                                          "The total number of consensus proposals committed.");
  proposals_applied_total = r->AddGauge("etcd_server_proposals_applied_total",
                                        "The total number of consensus proposals applied.");
  proposals_pending = r->AddGauge("etcd_server_proposals_pending",
                                  "The current number of pending proposals to commit.");
  proposals_failed_total = r->AddCounter("etcd_server_proposals_failed_total",
                                         "The total number of failed proposals seen.");
  heartbeat_send_failures_total = r->AddCounter(
      "etcd_server_heartbeat_send_failures_total",
      "The total number of leader heartbeat send failures (likely overloaded from slow disk).");
  slow_apply_total =
      r->AddCounter("etcd_server_slow_apply_total",
                    "The total number of slow apply requests (likely overloaded from slow disk).");
  slow_read_indexes_total = r->AddCounter("etcd_server_slow_read_indexes_total",
                                          "The total number of pending read indexes not in sync "
                                          "with leader's or timed out read index requests.");
  read_indexes_failed_total = r->AddCounter("etcd_server_read_indexes_failed_total",
                                            "The total number of failed read indexes seen.");
  read_index_rounds_total = r->AddCounter(
      "ganglion_server_read_index_rounds_total",
      "Read-index rounds this member started; each serves every linearizable read waiting.");
  quota_backend_bytes = r->AddGauge("etcd_server_quota_backend_bytes",
                                    "Current backend storage quota size in bytes.");

  wal_fsync_duration_seconds = r->AddHistogram("etcd_disk_wal_fsync_duration_seconds",
                                               "The latency distributions of fsync called by WAL.",
                                               ExponentialBuckets(0.001, 2, 14));
  backend_commit_duration_seconds = r->AddHistogram(
      "etcd_disk_backend_commit_duration_seconds",
      "The latency distributions of commit called by backend.", ExponentialBuckets(0.001, 2, 14));
  wal_write_bytes_total =
      r->AddGauge("etcd_disk_wal_write_bytes_total", "Total number of bytes written in WAL.");

  r->AddGaugeFunc("etcd_mvcc_db_total_size_in_bytes",
                  "Total size of the underlying database physically allocated in bytes.",
                  or_zero(std::move(sources.db_total_size_bytes)));
  r->AddGaugeFunc("etcd_mvcc_db_total_size_in_use_in_bytes",
                  "Total size of the underlying database logically in use in bytes.",
                  or_zero(std::move(sources.db_total_size_in_use_bytes)));
  mvcc_range_total =
      r->AddCounter("etcd_mvcc_range_total", "Total number of ranges seen by this member.");
  mvcc_put_total =
      r->AddCounter("etcd_mvcc_put_total", "Total number of puts seen by this member.");
  mvcc_delete_total =
      r->AddCounter("etcd_mvcc_delete_total", "Total number of deletes seen by this member.");
  mvcc_txn_total =
      r->AddCounter("etcd_mvcc_txn_total", "Total number of txns seen by this member.");
  mvcc_keys_total = r->AddGauge("etcd_debugging_mvcc_keys_total", "Total number of keys.");
  mvcc_watch_stream_total =
      r->AddGauge("etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.");
  mvcc_watcher_total =
      r->AddGauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.");
  mvcc_slow_watcher_total = r->AddGauge("etcd_debugging_mvcc_slow_watcher_total",
                                        "Total number of unsynced slow watchers.");
  mvcc_events_total = r->AddCounter("etcd_debugging_mvcc_events_total",
                                    "Total number of events sent by this member.");

  lease_granted_total =
      r->AddCounter("etcd_debugging_lease_granted_total", "The total number of granted leases.");
  lease_revoked_total =
      r->AddCounter("etcd_debugging_lease_revoked_total", "The total number of revoked leases.");
  lease_renewed_total = r->AddCounter("etcd_debugging_lease_renewed_total",
                                      "The number of renewed leases seen by the leader.");
  lease_ttl_total =
      r->AddHistogram("etcd_debugging_lease_ttl_total", "Bucketed histogram of lease TTLs.",
                      ExponentialBuckets(1, 2, 24));
  lease_expired_total = r->AddCounter("etcd_debugging_server_lease_expired_total",
                                      "The total number of expired leases.");
}

}  // namespace ganglion::server
