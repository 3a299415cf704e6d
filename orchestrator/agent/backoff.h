// Restart back-off of a crashing container, as a kubelet user knows it: the
// first restart waits `initial`, each further one twice the previous wait,
// capped at `max`; a container that ran for `reset_after` without exiting
// starts over at `initial`. Pure arithmetic: the caller passes the clock.
#pragma once

#include "absl/time/time.h"

namespace ganglion::orchestrator::agent {

struct BackoffPolicy {
  absl::Duration initial = absl::Seconds(10);
  absl::Duration max = absl::Minutes(5);
  // A run at least this long forgets earlier crashes (kubelet: 10 minutes).
  absl::Duration reset_after = absl::Minutes(10);
};

class RestartBackoff {
 public:
  explicit RestartBackoff(BackoffPolicy policy = {}) : policy_(policy) {}

  // The container exited at `exited_at` after running since `started_at`;
  // returns the earliest time it may start again.
  absl::Time OnExit(absl::Time started_at, absl::Time exited_at);
  // The wait the next exit would get if it came now (for tests and status).
  absl::Duration current() const { return current_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  absl::Duration current_ = absl::ZeroDuration();  // zero: no crash remembered
};

}  // namespace ganglion::orchestrator::agent
