// Kubernetes resource quantities ("100m", "1", "0.5", "512Mi", "1G", "1e3")
// as exact integers, for the scheduler's resource arithmetic. A quantity is a
// signed decimal number followed by at most one suffix: a binary one (Ki, Mi,
// Gi, Ti, Pi, Ei), a decimal one (n, u, m, "", k, M, G, T, P, E) or a decimal
// exponent (e3, E-2). It must never round a request down: values that do not
// fall on the unit are rounded up, and values beyond int64 saturate.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace ganglion::orchestrator::scheduler {

// The value in thousandths of the unit ("100m" -> 100, "2" -> 2000): CPU.
absl::StatusOr<int64_t> ParseQuantityMilli(std::string_view text);
// The value in whole units, rounded up ("1Ki" -> 1024, "100m" -> 1): memory,
// pods, storage and extended resources.
absl::StatusOr<int64_t> ParseQuantity(std::string_view text);

}  // namespace ganglion::orchestrator::scheduler
