#include "orchestrator/agent/backoff.h"

#include <algorithm>

namespace ganglion::orchestrator::agent {

absl::Time RestartBackoff::OnExit(absl::Time started_at, absl::Time exited_at) {
  if (exited_at - started_at >= policy_.reset_after) current_ = absl::ZeroDuration();
  current_ =
      current_ == absl::ZeroDuration() ? policy_.initial : std::min(current_ * 2, policy_.max);
  return exited_at + current_;
}

}  // namespace ganglion::orchestrator::agent
