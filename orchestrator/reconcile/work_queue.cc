#include "orchestrator/reconcile/work_queue.h"

#include <algorithm>
#include <cmath>

#include "absl/time/clock.h"

namespace ganglion::orchestrator {

WorkQueue::WorkQueue(WorkQueueOptions options) : options_(options) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shut_down_ || dirty_.count(key) != 0) return;
  if (dirty_.size() + waiting_at_.size() >= options_.keys_max) {
    ++dropped_;
    return;
  }
  dirty_.insert(key);
  // A key held by a worker is queued again when the worker is Done.
  if (processing_.count(key) != 0) return;
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, absl::Duration delay) {
  if (delay <= absl::ZeroDuration()) return Add(key);
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  const absl::Time at = absl::Now() + delay;
  auto it = waiting_at_.find(key);
  if (it != waiting_at_.end()) {
    if (it->second <= at) return;  // already due sooner
    // Move the key's one delayed entry earlier.
    auto range = waiting_.equal_range(it->second);
    for (auto w = range.first; w != range.second; ++w) {
      if (w->second == key) {
        waiting_.erase(w);
        break;
      }
    }
  } else if (dirty_.size() + waiting_at_.size() >= options_.keys_max) {
    ++dropped_;
    return;
  }
  waiting_at_[key] = at;
  waiting_.emplace(at, key);
  cv_.notify_all();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  absl::Duration delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int n = ++failures_[key];
    const double factor = std::ldexp(1.0, std::min(n - 1, 40));
    delay = std::min(options_.backoff_base * factor, options_.backoff_max);
  }
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int WorkQueue::Failures(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (shut_down_) return std::nullopt;
    // Delayed keys that are due join the queue.
    const absl::Time now = absl::Now();
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
      std::string key = waiting_.begin()->second;
      waiting_.erase(waiting_.begin());
      waiting_at_.erase(key);
      AddLocked(key);
    }
    if (!queue_.empty()) {
      std::string key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    if (waiting_.empty()) {
      cv_.wait(lock);
    } else {
      cv_.wait_for(lock, absl::ToChronoNanoseconds(waiting_.begin()->first - now));
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0 && !shut_down_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shut_down_ = true;
  cv_.notify_all();
}

size_t WorkQueue::Len() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

uint64_t WorkQueue::dropped_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace ganglion::orchestrator
