#include "orchestrator/workloads/expectations.h"

#include <spdlog/spdlog.h>

namespace ganglion::orchestrator::workloads {

bool Expectations::Satisfied(const std::string& owner) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(owner);
  if (it == records_.end()) return true;
  const Record& r = it->second;
  if (r.creations <= 0 && r.deletions.empty()) return true;
  if (now_() - r.set_at > timeout_) {
    spdlog::warn("event=expectations_expired owner={} creations={} deletions={}", owner,
                 r.creations, r.deletions.size());
    return true;
  }
  return false;
}

void Expectations::ExpectCreations(const std::string& owner, int count) {
  std::lock_guard<std::mutex> lock(mu_);
  records_[owner] = Record{count, {}, now_()};
}

void Expectations::ExpectDeletions(const std::string& owner,
                                   const std::vector<std::string>& pod_keys) {
  std::lock_guard<std::mutex> lock(mu_);
  records_[owner] = Record{0, std::set<std::string>(pod_keys.begin(), pod_keys.end()), now_()};
}

void Expectations::CreationObserved(const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(owner);
  if (it != records_.end() && it->second.creations > 0) it->second.creations--;
}

void Expectations::DeletionObserved(const std::string& owner, const std::string& pod_key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(owner);
  if (it != records_.end()) it->second.deletions.erase(pod_key);
}

void Expectations::Forget(const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  records_.erase(owner);
}

std::pair<int, int> Expectations::Pending(const std::string& owner) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(owner);
  if (it == records_.end()) return {0, 0};
  return {it->second.creations, static_cast<int>(it->second.deletions.size())};
}

}  // namespace ganglion::orchestrator::workloads
