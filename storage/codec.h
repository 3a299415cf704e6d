// Byte encodings shared by the stores: big-endian keys (so RocksDB's
// bytewise order is numeric order) and little-endian value fields.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raft/types.h"

namespace ganglion::storage {

void PutFixed64BE(std::string* out, uint64_t v);
uint64_t DecodeFixed64BE(std::string_view in);

// A cursor over an encoded value; every Get fails (returns false) rather than
// read past the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool GetU64(uint64_t* v);
  bool GetU8(uint8_t* v);
  bool GetBytes(std::string* v);  // length-prefixed
  bool GetIds(std::vector<uint64_t>* ids);
  std::string_view Rest() const { return in_; }
  bool Done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

void PutU64(std::string* out, uint64_t v);
void PutU8(std::string* out, uint8_t v);
void PutBytes(std::string* out, std::string_view v);
void PutIds(std::string* out, const std::vector<uint64_t>& ids);

std::string EncodeHardState(const raft::HardState& hs);
bool DecodeHardState(std::string_view in, raft::HardState* hs);
void PutConfState(std::string* out, const raft::ConfState& cs);
bool GetConfState(Reader* r, raft::ConfState* cs);
std::string EncodeSnapshot(const raft::Snapshot& s);
bool DecodeSnapshot(std::string_view in, raft::Snapshot* s);
// An entry's value (its index is the key).
std::string EncodeEntryValue(const raft::Entry& e);
bool DecodeEntryValue(std::string_view in, raft::Index index, raft::Entry* e);

}  // namespace ganglion::storage
