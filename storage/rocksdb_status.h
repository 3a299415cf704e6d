// RocksDB statuses as the absl::Status the stores return, naming the store
// and the operation so an operator can tell which disk write failed.
#pragma once

#include <rocksdb/status.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ganglion::storage {

inline absl::Status FromRocks(const rocksdb::Status& s, std::string_view store,
                              std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(std::string(store), ": ", std::string(what), ": ", s.ToString()));
}

}  // namespace ganglion::storage
