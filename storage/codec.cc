#include "storage/codec.h"

namespace ganglion::storage {

namespace {
constexpr size_t kIdsMax = 1 << 16;
}

void PutFixed64BE(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; i--) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t DecodeFixed64BE(std::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < in.size(); i++) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutU8(std::string* out, uint8_t v) {
  out->push_back(static_cast<char>(v));
}

void PutBytes(std::string* out, std::string_view v) {
  PutU64(out, v.size());
  out->append(v);
}

void PutIds(std::string* out, const std::vector<uint64_t>& ids) {
  PutU64(out, ids.size());
  for (uint64_t id : ids) PutU64(out, id);
}

bool Reader::GetU64(uint64_t* v) {
  if (in_.size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; i++) *v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
  in_.remove_prefix(8);
  return true;
}

bool Reader::GetU8(uint8_t* v) {
  if (in_.empty()) return false;
  *v = static_cast<uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}

bool Reader::GetBytes(std::string* v) {
  uint64_t n = 0;
  if (!GetU64(&n) || in_.size() < n) return false;
  v->assign(in_.data(), n);
  in_.remove_prefix(n);
  return true;
}

bool Reader::GetIds(std::vector<uint64_t>* ids) {
  uint64_t n = 0;
  if (!GetU64(&n) || n > kIdsMax) return false;
  ids->clear();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t id = 0;
    if (!GetU64(&id)) return false;
    ids->push_back(id);
  }
  return true;
}

std::string EncodeHardState(const raft::HardState& hs) {
  std::string out;
  PutU64(&out, hs.term);
  PutU64(&out, hs.vote);
  PutU64(&out, hs.commit);
  return out;
}

bool DecodeHardState(std::string_view in, raft::HardState* hs) {
  Reader r(in);
  return r.GetU64(&hs->term) && r.GetU64(&hs->vote) && r.GetU64(&hs->commit) && r.Done();
}

void PutConfState(std::string* out, const raft::ConfState& cs) {
  PutIds(out, cs.voters);
  PutIds(out, cs.learners);
  PutIds(out, cs.voters_outgoing);
  PutIds(out, cs.learners_next);
  PutU8(out, cs.auto_leave ? 1 : 0);
}

bool GetConfState(Reader* r, raft::ConfState* cs) {
  uint8_t auto_leave = 0;
  if (!r->GetIds(&cs->voters) || !r->GetIds(&cs->learners) || !r->GetIds(&cs->voters_outgoing) ||
      !r->GetIds(&cs->learners_next) || !r->GetU8(&auto_leave)) {
    return false;
  }
  cs->auto_leave = auto_leave != 0;
  return true;
}

std::string EncodeSnapshot(const raft::Snapshot& s) {
  std::string out;
  PutU64(&out, s.metadata.index);
  PutU64(&out, s.metadata.term);
  PutConfState(&out, s.metadata.conf_state);
  PutBytes(&out, s.data);
  return out;
}

bool DecodeSnapshot(std::string_view in, raft::Snapshot* s) {
  Reader r(in);
  return r.GetU64(&s->metadata.index) && r.GetU64(&s->metadata.term) &&
         GetConfState(&r, &s->metadata.conf_state) && r.GetBytes(&s->data) && r.Done();
}

std::string EncodeEntryValue(const raft::Entry& e) {
  std::string out;
  out.reserve(9 + e.data.size());
  PutU64(&out, e.term);
  PutU8(&out, static_cast<uint8_t>(e.type));
  out.append(e.data);
  return out;
}

bool DecodeEntryValue(std::string_view in, raft::Index index, raft::Entry* e) {
  Reader r(in);
  uint8_t type = 0;
  if (!r.GetU64(&e->term) || !r.GetU8(&type) || type > 1) return false;
  e->index = index;
  e->type = static_cast<raft::EntryType>(type);
  e->data.assign(r.Rest());
  return true;
}

}  // namespace ganglion::storage
