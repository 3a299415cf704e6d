// The snapshot file that Maintenance.Snapshot streams (`etcdctl snapshot
// save` stores it) and `ganglion --restore` reads: a state store checkpoint's
// files in one archive, followed by the SHA-256 of everything before it (as
// etcd appends a hash to its snapshots) so a truncated or damaged file is
// refused instead of restored.
//
//   "GANGLION-SNAPSHOT-1\n"
//   per file: U32 name length, name, U64 size, bytes   (big-endian)
//   U32 0                                               end of files
//   zero bytes up to a multiple of 512                  (etcdctl's check)
//   32 bytes SHA-256 of all the bytes above
#pragma once

#include <string>

#include "absl/status/status.h"

namespace ganglion::server {

absl::Status PackSnapshot(const std::string& checkpoint_dir, const std::string& out_file);
// Verifies the hash, then writes the files into out_dir (which must not exist).
absl::Status UnpackSnapshot(const std::string& file, const std::string& out_dir);

}  // namespace ganglion::server
